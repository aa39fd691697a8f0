"""Solution notebooks as nbgrader source notebooks.

An author marks a lesson's exercises with cell tags (see CONTRIBUTING.md):

* ``exercise``: a code cell that starts with ``# Exercise N.M (★★☆) — title`` and holds its
  solution between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` lines;
* ``check``: the next code cell, whose last line calls the exercise's check, e.g.
  ``checks.exercise_1_1(right_null_space)``.

:func:`mark_for_nbgrader` stores what nbgrader needs in the notebook itself (nbgrader's "Create
Assignment" metadata, schema 3): the exercise cell becomes a *solution* cell, the check cell a
locked *autograder test* cell worth one point per star, and the check cell gets a hidden test
line, restored by ``nbgrader autograde`` and stripped from what students get, that switches the
check to graded mode (a check that does not pass raises, so the cell scores zero). The function is
idempotent: ``python -m nullspace.course.exercises`` runs it on every solution notebook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import nbformat

__all__ = [
    "BEGIN_HIDDEN",
    "END_HIDDEN",
    "ExerciseHeader",
    "check_call",
    "exercise_header",
    "mark_for_nbgrader",
    "tags",
]

BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
NBGRADER_SCHEMA = 3
HEADER = re.compile(r"^# Exercise (?P<id>\d+\.\d+) \((?:difficulty:? )?(?P<stars>[★☆]{3})\) — (?P<title>.+)$",
                    flags=re.MULTILINE)
CHECK_CALL = re.compile(r"^(?P<check>checks\.exercise_\d+_\d+)\(.*\)\s*;?\s*$")


@dataclass(frozen=True)
class ExerciseHeader:
    """The first line of an exercise cell: ``# Exercise 2.1 (★★☆) — the input rows of a layer``."""

    exercise: str
    difficulty: int
    title: str

    @property
    def grade_id(self) -> str:
        return "exercise_" + self.exercise.replace(".", "_")


def tags(cell: nbformat.NotebookNode) -> set[str]:
    """The cell's tags."""
    return set(cell.get("metadata", {}).get("tags", []))


def exercise_header(source: str, where: str) -> ExerciseHeader:
    """Parse an exercise cell's header line; ``where`` names the cell in the error message."""
    match = HEADER.search(source)
    if not match:
        raise ValueError(f"{where}: an exercise cell must start with a line like "
                         "'# Exercise 2.1 (★★☆) — the input rows of a layer'.")
    return ExerciseHeader(match.group("id"), match.group("stars").count("★"), match.group("title").strip())


def check_call(source: str, where: str) -> str:
    """The check's name in a check cell (``checks.exercise_1_1``), from its last line."""
    lines = [line for line in source.strip().splitlines() if line.strip()]
    match = CHECK_CALL.match(lines[-1]) if lines else None
    if not match:
        raise ValueError(f"{where}: the last line of a check cell must call the check, "
                         "like 'checks.exercise_1_1(right_null_space)'.")
    return match.group("check")


def _hidden_block(check: str) -> str:
    return (f"{BEGIN_HIDDEN}\n"
            f"{check}.graded = True  # nbgrader autograde: a check that does not pass raises (the cell scores 0)\n"
            f"{END_HIDDEN}")


def _without_hidden(source: str) -> str:
    return re.sub(rf"{re.escape(BEGIN_HIDDEN)}.*?{re.escape(END_HIDDEN)}\n?", "", source, flags=re.DOTALL)


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, points: int | None = None) -> dict:
    metadata = {"grade": grade, "grade_id": grade_id, "locked": not solution, "schema_version": NBGRADER_SCHEMA,
                "solution": solution, "task": False}
    if points is not None:
        metadata["points"] = points
    return metadata


def mark_for_nbgrader(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """Write nbgrader's metadata and the graded-mode hidden test into ``nb`` (in place; returned).

    ``name`` (the notebook's file name) is only used in error messages. Raises ``ValueError`` when
    an exercise cell has no header, no solution region, or no check cell right after it.
    """
    code_cells = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for position, (index, cell) in enumerate(code_cells):
        if "exercise" not in tags(cell):
            continue
        where = f"{name}, cell {index}"
        header = exercise_header(cell.source, where)
        if "BEGIN SOLUTION" not in cell.source or "END SOLUTION" not in cell.source:
            raise ValueError(f"{where}: exercise {header.exercise} needs its solution between "
                             "'### BEGIN SOLUTION' and '### END SOLUTION' lines.")
        following = code_cells[position + 1][1] if position + 1 < len(code_cells) else None
        if following is None or "check" not in tags(following):
            raise ValueError(f"{where}: exercise {header.exercise} must be followed by a code cell tagged 'check'.")
        cell.metadata["nbgrader"] = _nbgrader(header.grade_id, solution=True, grade=False)
        check = check_call(following.source, f"{name}, the check of exercise {header.exercise}")
        following.source = _hidden_block(check) + "\n" + _without_hidden(following.source).strip()
        following.metadata["nbgrader"] = _nbgrader(header.grade_id.replace("exercise_", "check_"),
                                                    solution=False, grade=True, points=header.difficulty)
    return nb
