"""A graded class end to end with nbgrader: set up a course directory, generate lesson 1's
assignment, autograde three submissions (every exercise solved, none solved, one wrong) and read
the scores from nbgrader's gradebook."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from nullspace.course.classroom import init_course
from nullspace.paths import EXERCISES_DIR, NOTEBOOKS_DIR

LESSON = NOTEBOOKS_DIR / "01_null_space_first_principles.ipynb"
ASSIGNMENT = "lesson01"
WRONG = {"exercise_1_4": '''
def protect_update(X_old, delta, rel_tol):
    values, vectors = torch.linalg.eigh(X_old.T @ X_old / len(X_old))
    u2 = vectors[:, values.abs() <= rel_tol]
    return delta @ u2 @ u2.T
'''}


def nbgrader(root: Path, *args: str) -> None:
    env = {**os.environ, "NULLSPACE_PROGRESS": "0", "PYTHONWARNINGS": "ignore",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # nbgrader runs alembic
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], check=False, cwd=root, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def grade_ids(nb, key: str) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get(key)]


def submit(root: Path, student: str, nb) -> None:
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / LESSON.name)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    init_course(root, [LESSON])
    nbgrader(root, "generate_assignment", ASSIGNMENT)
    release = nbformat.read(root / "release" / ASSIGNMENT / LESSON.name, as_version=4)
    source = nbformat.read(root / "source" / ASSIGNMENT / LESSON.name, as_version=4)
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                 if c.get("metadata", {}).get("nbgrader", {}).get("solution")}

    def filled(answers: dict[str, str]):
        nb = nbformat.from_dict(release)
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        return nb

    submit(root, "solved", filled(solutions))
    submit(root, "unsolved", filled({}))
    submit(root, "one_wrong", filled({**solutions, **WRONG}))
    nbgrader(root, "autograde", ASSIGNMENT)
    return root, release


def scores(root: Path, student: str, checks: list[str]) -> dict[str, tuple[float, float]]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        grades = {grade_id: gradebook.find_grade(grade_id, LESSON.stem, ASSIGNMENT, student) for grade_id in checks}
        return {grade_id: (grade.score, grade.max_score) for grade_id, grade in grades.items()}


def test_release_is_the_learner_notebook(graded_class):
    _, release = graded_class
    ours = nbformat.read(EXERCISES_DIR / LESSON.name, as_version=4)
    # the banner differs: a graded class's release does not point to the solution notebook
    assert [(c.source, c.metadata) for c in release.cells[1:]] == [(c.source, c.metadata) for c in ours.cells[1:]]
    assert "solution notebook" in ours.cells[0].source and "solution notebook [" not in release.cells[0].source
    assert not any("BEGIN HIDDEN TESTS" in c.source or "BEGIN SOLUTION" in c.source for c in release.cells)


def test_solved_scores_full_points_unsolved_zero_one_wrong_loses_that_check(graded_class):
    root, release = graded_class
    checks = grade_ids(release, "grade")
    assert len(checks) == 5
    solved, unsolved, one_wrong = (scores(root, s, checks) for s in ("solved", "unsolved", "one_wrong"))
    assert all(score == maximum > 0 for score, maximum in solved.values()), solved
    assert all(score == 0 for score, _ in unsolved.values()), unsolved
    assert one_wrong["check_1_4"][0] == 0, one_wrong
    assert all(score == maximum for grade_id, (score, maximum) in one_wrong.items() if grade_id != "check_1_4")
    feedback = nbformat.read(root / "autograded" / "one_wrong" / ASSIGNMENT / LESSON.name, as_version=4)
    error = next(o for c in feedback.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "check_1_4"
                 for o in c.outputs if o.output_type == "error")
    assert error.ename == "ExerciseNotPassed" and error.traceback[0].startswith("❌ Exercise 1.4")


def test_init_course_refuses_an_existing_course(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("# an instructor's own settings\n")
    with pytest.raises(FileExistsError, match="nothing of an existing course is overwritten"):
        init_course(tmp_path, [LESSON])
    assert (tmp_path / "nbgrader_config.py").read_text() == "# an instructor's own settings\n"
