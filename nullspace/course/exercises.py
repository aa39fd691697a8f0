"""Learner notebooks from the solution notebooks, by nbgrader (one source for both).

``python -m nullspace.course.exercises`` does two things for every lesson with exercises:

1. stores nbgrader's metadata in the solution notebook (:func:`nullspace.course.nbgrader_source.
   mark_for_nbgrader`: exercise cells become solution cells, check cells autograded tests);
2. runs ``nbgrader generate_assignment`` with the course's settings
   (:mod:`nullspace.course.classroom`) and writes the release version to ``notebooks/exercises/``.

With ``--check`` it writes nothing and fails when either would change a file. The functions
below also give the tests each exercise with the cells it needs (:func:`exercise_cells`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from nullspace.course.classroom import CODE_STUB, generate_learner_notebooks
from nullspace.course.nbgrader_source import (
    BEGIN_HIDDEN,
    END_HIDDEN,
    ExerciseHeader,
    exercise_header,
    mark_for_nbgrader,
    tags,
)
from nullspace.paths import EXERCISES_DIR, NOTEBOOKS_DIR

__all__ = [
    "Exercise",
    "exercise_cells",
    "learner_source",
    "lessons_with_exercises",
    "solution_notebooks",
    "stub_source",
    "write_exercise_notebooks",
]


@dataclass(frozen=True)
class Exercise:
    """One exercise of a solution notebook, with what it needs to run on its own.

    ``preceding_sources`` are the notebook's setup cells and its earlier exercise cells (an
    exercise may build on the ones before it), in notebook order; ``check_source`` is the check
    cell as the learner sees it (without nbgrader's hidden test); ``description`` is the markdown
    cell that introduces the exercise.
    """

    notebook: Path
    header: ExerciseHeader
    preceding_sources: tuple[str, ...]
    solution_source: str
    check_source: str
    description: str

    @property
    def exercise(self) -> str:
        return self.header.exercise


def learner_source(check_source: str) -> str:
    """A check cell without nbgrader's hidden test region (what ``generate_assignment`` leaves)."""
    out, hidden = [], False
    for line in check_source.splitlines():
        if BEGIN_HIDDEN in line:
            hidden = True
        elif END_HIDDEN in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


def stub_source(solution_source: str) -> str:
    """An exercise cell as nbgrader releases it: each solution region replaced by the stub."""
    out, inside = [], False
    for line in solution_source.splitlines():
        if "BEGIN SOLUTION" in line:
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + CODE_STUB)
        elif "END SOLUTION" in line:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("a BEGIN SOLUTION region is never closed: add its END SOLUTION line, or nbgrader would "
                         "release the rest of the cell as solution.")
    return "\n".join(out)


def exercise_cells(path: Path) -> list[Exercise]:
    """The exercises of a solution notebook, in order (see :class:`Exercise`)."""
    nb = nbformat.read(path, as_version=4)
    preceding: list[str] = []
    found: list[Exercise] = []
    description = ""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            description = cell.source
            continue
        cell_tags = tags(cell)
        if "setup" in cell_tags:
            preceding.append(cell.source)
        if "exercise" not in cell_tags:
            continue
        header = exercise_header(cell.source, f"{path.name}, cell {index}")
        check = next((c for c in nb.cells[index + 1:] if c.cell_type == "code"), None)
        if check is None or "check" not in tags(check):
            raise ValueError(f"{path.name}: exercise {header.exercise} is not followed by a 'check' cell.")
        found.append(Exercise(path, header, tuple(preceding), cell.source, learner_source(check.source),
                              description))
        preceding.append(cell.source)
    return found


def solution_notebooks(directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered solution notebooks, in teaching order."""
    return sorted(directory.glob("[0-9][0-9]_*.ipynb"))


def lessons_with_exercises(directory: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered solution notebooks that have exercises, in teaching order."""
    return [p for p in solution_notebooks(directory) if exercise_cells(p)]


def _render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def _update(path: Path, text: str, check: bool, stale: list[Path]) -> None:
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current != text:
        stale.append(path)
        if not check:
            path.write_text(text, encoding="utf-8")


def write_exercise_notebooks(check: bool = False) -> list[Path]:
    """Store nbgrader's metadata in the solution notebooks and write the learner versions (or,
    with ``check``, only compare); return the files that were (or would be) changed."""
    stale: list[Path] = []
    notebooks = lessons_with_exercises()
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        _update(path, _render(mark_for_nbgrader(nb, path.name)), check, stale)
    if check and stale:
        return stale  # learner versions come from the marked sources: stale either way
    EXERCISES_DIR.mkdir(exist_ok=True)
    for path, released in generate_learner_notebooks(notebooks).items():
        _update(EXERCISES_DIR / path.name, _render(released), check, stale)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if a solution notebook's nbgrader metadata or a learner notebook is out of date")
    args = parser.parse_args(argv)
    stale = write_exercise_notebooks(check=args.check)
    names = ", ".join(str(p.relative_to(NOTEBOOKS_DIR)) for p in stale)
    if args.check and stale:
        print(f"out of date: {names}. Run `python -m nullspace.course.exercises`.")
        return 1
    print(("checked" if args.check else "wrote") + f" exercise notebooks ({len(stale)} changed{': ' + names if stale else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
