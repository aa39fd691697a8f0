"""The course as an nbgrader course (https://nbgrader.readthedocs.io).

The solution notebooks are nbgrader *source* notebooks (:mod:`nullspace.course.nbgrader_source`).
nbgrader's ``generate_assignment`` makes what students get and ``autograde`` grades what they hand
in; this module only configures it for the course:

* cells tagged ``solution-only`` (instructors' worked answers) are dropped from the release;
* the outputs of exercise and check cells are cleared, every other cell keeps its stored output
  (figures and numbers read well before the notebook is run);
* a banner says what the notebook is;
* cells may run for 15 minutes under ``autograde`` (nbgrader's default is 30 seconds).

``python -m nullspace.course.classroom DIRECTORY`` sets up a course directory for a graded
class: ``source/lessonNN/`` with each lesson's source notebook and an ``nbgrader_config.py`` that
calls :func:`configure`. Then, in that directory::

    nbgrader generate_assignment lesson01     # release/lesson01/: what students get
    nbgrader autograde lesson01               # grades submitted/<student>/lesson01/
    nbgrader generate_feedback lesson01       # feedback/<student>/lesson01/: an HTML report each
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat
from nbgrader.converters import GenerateAssignment
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
    NbGraderPreprocessor,
    SaveCells,
)
from nbgrader.utils import is_grade, is_solution
from traitlets import Bool
from traitlets.config import Config

from nullspace.course.nbgrader_source import mark_for_nbgrader, tags
from nullspace.paths import NOTEBOOKS_DIR

__all__ = [
    "ClearExerciseOutputs",
    "DropSolutionOnlyCells",
    "ExerciseBanner",
    "assignment_id",
    "configure",
    "generate_learner_notebooks",
    "init_course",
]

CODE_STUB = 'raise NotImplementedError("write your solution here")'
CELL_TIMEOUT_S = 900
CONFIG_FILE = '''"""nbgrader settings of the null-space course (see nullspace/course/classroom.py)."""
from nullspace.course.classroom import configure

configure(get_config())  # noqa: F821 (get_config is defined by nbgrader when it reads this file)
'''


class DropSolutionOnlyCells(NbGraderPreprocessor):
    """Remove the cells tagged ``solution-only`` (instructors' worked answers)."""

    def preprocess(self, nb, resources):
        nb.cells = [cell for cell in nb.cells if "solution-only" not in tags(cell)]
        return nb, resources


class ClearExerciseOutputs(NbGraderPreprocessor):
    """Clear the outputs of exercise (solution) and check (grade) cells; keep all others."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and (is_solution(cell) or is_grade(cell)):
            cell.outputs = []
            cell.execution_count = None
        return cell, resources


class ExerciseBanner(NbGraderPreprocessor):
    """Put a short note about the exercise version above the lesson."""

    solution_link = Bool(True, help="Point to the solution notebook one folder up (self-study).").tag(config=True)

    def preprocess(self, nb, resources):
        name = resources["nbgrader"]["notebook"] + ".ipynb"
        compare = (f" Compare with the solution notebook [`{name}`](../{name}) when you are done."
                   if self.solution_link else "")
        banner = nbformat.v4.new_markdown_cell(
            "> **Exercise version**, generated from the solution notebook by nbgrader "
            "(`python -m nullspace.course.exercises`); do not edit it by hand. Replace each "
            "`raise NotImplementedError(...)` with your code and run the check cell under it. "
            "Figures and numbers shown before you run the notebook are those of the solution run."
            + compare)
        banner.id = "exercise-banner"
        nb.cells = [banner, *nb.cells]
        return nb, resources


def configure(c: Config, *, solution_link: bool = False) -> Config:
    """Apply the course's nbgrader settings to ``c`` (a traitlets Config) and return it.

    ``solution_link`` points the banner to the solution notebook (the repository's learner
    versions); leave it off for a graded class, whose students do not get the solutions.
    """
    c.GenerateAssignment.preprocessors = [
        DropSolutionOnlyCells, LockCells, ClearSolutions, ClearExerciseOutputs, CheckCellMetadata,
        ComputeChecksums, SaveCells, ClearHiddenTests, ClearMarkScheme, ComputeChecksums, CheckCellMetadata,
        ExerciseBanner,
    ]
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    c.ExerciseBanner.solution_link = solution_link
    c.Execute.timeout = CELL_TIMEOUT_S
    return c


def assignment_id(notebook: Path) -> str:
    """The nbgrader assignment of a lesson notebook: ``01_….ipynb`` → ``lesson01``."""
    return "lesson" + notebook.name[:2]


def _write_sources(notebooks: list[Path], root: Path) -> None:
    for path in notebooks:
        target = root / "source" / assignment_id(path) / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nb = mark_for_nbgrader(nbformat.read(path, as_version=4), path.name)
        nbformat.write(nb, target)


def generate_learner_notebooks(notebooks: list[Path]) -> dict[Path, nbformat.NotebookNode]:
    """Run ``nbgrader generate_assignment`` (without a gradebook) on each solution notebook in a
    scratch course directory; return each notebook's release version."""
    released = {}
    with tempfile.TemporaryDirectory(prefix="nullspace-nbgrader-") as scratch:
        root = Path(scratch)
        _write_sources(notebooks, root)
        for path in notebooks:
            c = configure(Config(), solution_link=True)
            c.CourseDirectory.root = str(root)
            c.CourseDirectory.assignment_id = assignment_id(path)
            c.GenerateAssignment.no_database = True
            c.SaveCells.enabled = False
            converter = GenerateAssignment(coursedir=CourseDirectory(config=c), config=c)
            converter.start()
            released[path] = nbformat.read(root / "release" / assignment_id(path) / path.name, as_version=4)
    return released


def init_course(directory: Path, notebooks: list[Path] | None = None) -> list[Path]:
    """Set up an nbgrader course directory: ``source/lessonNN/`` and ``nbgrader_config.py``.

    Refuses a directory that already has a ``source/`` folder or an ``nbgrader_config.py`` (nothing
    of an existing course is overwritten). Returns the source notebooks written.
    """
    directory = Path(directory)
    for existing in (directory / "source", directory / "nbgrader_config.py"):
        if existing.exists():
            raise FileExistsError(f"{existing} exists: choose an empty or new directory for the course "
                                  "(nothing of an existing course is overwritten).")
    if notebooks is None:
        notebooks = [p for p in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
                     if any("exercise" in tags(c) for c in nbformat.read(p, as_version=4).cells)]
    directory.mkdir(parents=True, exist_ok=True)
    _write_sources(notebooks, directory)
    (directory / "nbgrader_config.py").write_text(CONFIG_FILE, encoding="utf-8")
    return [directory / "source" / assignment_id(p) / p.name for p in notebooks]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Set up an nbgrader course directory for a graded class.")
    parser.add_argument("directory", type=Path, help="a new (or empty) folder for the course")
    args = parser.parse_args(argv)
    try:
        written = init_course(args.directory)
    except FileExistsError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"wrote {len(written)} source notebooks and nbgrader_config.py to {args.directory}.\n"
          f"next: cd {args.directory} && nbgrader generate_assignment lesson01")
    return 0


if __name__ == "__main__":
    sys.exit(main())
