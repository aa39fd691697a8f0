"""Every check rejects at least one plausible wrong solution: a known mistake, written out.

Each entry of MISTAKES replaces the exercise cell (or changes a piece of the solution); the check
must run it (so it is "implemented") and report a failure.
"""

import pytest
from exercise_runner import EXERCISES, NOT_YET_CONVERTED, exercise_id, run_check
from wrong_solutions import MISTAKES, Change


def test_every_converted_exercise_has_a_wrong_solution():
    missing = [exercise_id(ex) for ex in EXERCISES
               if ex.exercise not in MISTAKES and ex.notebook.name[:2] not in NOT_YET_CONVERTED]
    assert not missing, f"add a plausible wrong solution to tests/wrong_solutions.py for {missing}"
    known = {ex.exercise for ex in EXERCISES}
    assert set(MISTAKES) <= known, f"wrong solutions for exercises that do not exist: {set(MISTAKES) - known}"


CASES = [pytest.param(ex, mistake, source, id=f"{ex.exercise}:{mistake}")
         for ex in EXERCISES for mistake, source in MISTAKES.get(ex.exercise, {}).items()]


@pytest.mark.parametrize(("exercise", "mistake", "source"), CASES)
def test_check_rejects_the_mistake(exercise, mistake, source):
    code = source.apply(exercise.solution_source) if isinstance(source, Change) else source
    verdict = run_check(exercise, code)
    assert verdict.implemented and not verdict.passed, f"{mistake}: {verdict!r}"
