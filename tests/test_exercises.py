"""Every exercise's check fails on the generated stub and passes on the solution, and the
generated exercise notebooks are up to date with the solution notebooks."""

import pytest

from nullspace.course.exercises import (
    exercise_cells,
    solution_notebooks,
    stub_source,
    write_exercise_notebooks,
)
from nullspace.course.verdict import Verdict

EXERCISES = [ex for nb in solution_notebooks() for ex in exercise_cells(nb)]


def run_check(exercise, source: str) -> Verdict:
    namespace: dict = {}
    for setup in exercise.setup_sources:
        exec(compile(setup, f"<setup of {exercise.notebook.name}>", "exec"), namespace)  # noqa: S102
    exec(compile(source, f"<exercise {exercise.exercise}>", "exec"), namespace)  # noqa: S102
    verdict = eval(compile(exercise.check_source.strip().rstrip(";"), "<check>", "eval"), namespace)
    assert isinstance(verdict, Verdict), f"the check cell of {exercise.exercise} must return a Verdict"
    return verdict


def test_every_lesson_with_exercises_has_at_least_four():
    per_notebook: dict[str, int] = {}
    for ex in EXERCISES:
        per_notebook[ex.notebook.name] = per_notebook.get(ex.notebook.name, 0) + 1
    assert per_notebook, "no exercises found"
    assert all(count >= 4 for count in per_notebook.values()), per_notebook


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: f"{ex.notebook.stem}:{ex.exercise}")
def test_check_passes_on_solution(exercise):
    verdict = run_check(exercise, exercise.solution_source)
    assert verdict.passed, repr(verdict)


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: f"{ex.notebook.stem}:{ex.exercise}")
def test_check_fails_on_stub(exercise):
    verdict = run_check(exercise, stub_source(exercise.solution_source, exercise.exercise))
    assert not verdict.passed and not verdict.implemented, repr(verdict)


def test_exercise_notebooks_are_up_to_date():
    stale = write_exercise_notebooks(check=True)
    assert not stale, f"regenerate with `python -m nullspace.course.exercises`: {stale}"


@pytest.mark.bad_input
def test_stub_source_keeps_indentation_and_signature():
    source = "# Exercise 9.9\ndef f(x):\n    y = 1\n    # BEGIN SOLUTION\n    return x + y\n    # END SOLUTION\n"
    stub = stub_source(source, "9.9")
    assert "def f(x):\n    y = 1\n    raise NotImplementedError(" in stub
    assert "return x + y" not in stub
    with pytest.raises(ValueError, match="never closed"):
        stub_source("# BEGIN SOLUTION\nx = 1", "9.9")
