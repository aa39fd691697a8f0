"""The learner's own code runs the method: lesson 4's learner notebook, its exercises filled with
the solutions, trains the course benchmark (split-digits, the lesson's epochs) to the ACC and BWT
of the package's Adam-NSCL, in the notebook's own cell that compares the two."""

import contextlib
import io

import nbformat

from nullspace.course.exercises import stub_source
from nullspace.paths import EXERCISES_DIR, NOTEBOOKS_DIR

LESSON = "04_adam_nscl.ipynb"


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def test_learner_notebook_filled_with_the_solutions_trains_like_the_package():
    learner = nbformat.read(EXERCISES_DIR / LESSON, as_version=4)
    solutions = {grade_id(c): c.source for c in nbformat.read(NOTEBOOKS_DIR / LESSON, as_version=4).cells
                 if c.get("metadata", {}).get("nbgrader", {}).get("solution")}
    namespace: dict = {}
    filled = 0
    for cell in learner.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "setup" in tags:
            exec(compile(cell.source, "<setup>", "exec"), namespace)  # noqa: S102
        elif grade_id(cell) in solutions:
            solution = solutions[grade_id(cell)]
            assert cell.source == stub_source(solution), f"{grade_id(cell)}: the learner cell is not the released stub"
            exec(compile(solution, f"<{grade_id(cell)} filled>", "exec"), namespace)  # noqa: S102
            filled += 1
        elif "train_in_null_space(" in cell.source and cell.cell_type == "code" and "check" not in tags:
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(cell.source, "<the learner's run>", "exec"), namespace)  # noqa: S102
            break
    else:
        raise AssertionError("the learner notebook has no cell that runs train_in_null_space on the course benchmark")
    assert filled >= 4, f"only {filled} exercises were filled before the run"
    assert "your optimizer and loop" in printed.getvalue(), printed.getvalue()
    yours, theirs = namespace["yours"], namespace["theirs"]
    assert abs(yours["ACC"] - theirs["ACC"]) <= 0.5, (yours, theirs)
    assert abs(yours["BWT"] - theirs["BWT"]) <= 0.5, (yours, theirs)
