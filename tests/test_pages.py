"""The README's syllabus table and the course index list exactly the lessons that exist."""

from pathlib import Path

import nbformat

from nullspace.course import pages
from nullspace.course.exercises import solution_notebooks
from nullspace.course.syllabus import SYLLABUS, lesson_notebook


def test_every_lesson_notebook_is_in_the_syllabus():
    planned = {lesson.number for lesson in SYLLABUS}
    lessons = [p for p in solution_notebooks() if p != pages.COURSE_INDEX]
    unplanned = [p.name for p in lessons if int(p.name[:2]) not in planned]
    assert not unplanned, f"add these lessons to nullspace/course/syllabus.py: {unplanned}"


def test_readme_and_course_index_are_up_to_date():
    stale = [name for name, update in (("README.md", pages.update_readme),
                                        ("course index", pages.update_course_index)) if update(check=True)]
    assert not stale, f"regenerate with `python -m nullspace.course.pages` (or `make pages`): {stale}"


def test_table_links_written_lessons_and_marks_the_others(tmp_path: Path, monkeypatch):
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "02_layers.ipynb")
    (tmp_path / "exercises").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "exercises" / "02_layers.ipynb")
    monkeypatch.setattr(pages, "lesson_notebook", lambda lesson: lesson_notebook(lesson, tmp_path))
    monkeypatch.setattr(pages, "EXERCISES_DIR", tmp_path / "exercises")
    rows = pages.syllabus_table("notebooks/", {"02_layers.ipynb": 90.0}).splitlines()[2:]
    assert len(rows) == len(SYLLABUS)
    assert "[The null space of a layer](notebooks/02_layers.ipynb)" in rows[1]
    assert "[exercises](notebooks/exercises/02_layers.ipynb)" in rows[1]
    assert rows[1].endswith("| 1.5 min |")
    assert "*(in preparation)*" in rows[0] and rows[0].endswith("| not measured yet |")
