"""Run one exercise's check outside its notebook: the setup cells and the earlier exercises (with
their solutions), then the given code in place of the exercise cell, then the check cell."""

from __future__ import annotations

from nullspace.course.exercises import Exercise, exercise_cells, lessons_with_exercises
from nullspace.course.verdict import Verdict

EXERCISES = [ex for nb in lessons_with_exercises() for ex in exercise_cells(nb)]
# Lessons whose exercises have not yet been converted to the course's exercise format (difficulty,
# importance, time, hints; a table of wrong solutions; the solution-line target).
NOT_YET_CONVERTED: set[str] = set()


def exercise_id(exercise: Exercise) -> str:
    return f"{exercise.notebook.stem}:{exercise.exercise}"


def run_check(exercise: Exercise, source: str) -> Verdict:
    """The check's verdict with ``source`` as the exercise cell."""
    namespace: dict = {}
    for index, preceding in enumerate(exercise.preceding_sources):
        exec(compile(preceding, f"<cell {index} before {exercise.exercise}>", "exec"), namespace)  # noqa: S102
    exec(compile(source, f"<exercise {exercise.exercise}>", "exec"), namespace)  # noqa: S102
    *body, last = exercise.check_source.strip().splitlines()
    exec(compile("\n".join(body), "<check cell>", "exec"), namespace)  # noqa: S102
    verdict = eval(compile(last.rstrip(";"), "<check>", "eval"), namespace)
    assert isinstance(verdict, Verdict), f"the check cell of {exercise.exercise} must return a Verdict"
    return verdict
