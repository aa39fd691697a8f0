"""The README's syllabus table and the course index list exactly the lessons that exist."""

import re
from pathlib import Path

import nbformat

from nullspace.course import pages
from nullspace.course.exercises import solution_notebooks
from nullspace.course.syllabus import SYLLABUS, lesson_notebook
from nullspace.paths import NOTEBOOKS_DIR, REPO_ROOT


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


# A lesson's run time, however a page words it: "runs in 2.2 min", "runs in about three minutes",
# "runs in well under a minute", "(0.9 min measured)".
RUN_TIME_QUOTE = re.compile(
    r"runs? in (?:about |under |well under |roughly )?(?:[\d.]+|an?|one|two|three|four|five|ten)\s*"
    r"(?:-|–)?\s*(?:min(?:ute)?s?|seconds?|s)\b|\b[\d.]+ min(?:utes)? measured", re.IGNORECASE)


def _pages_with_text() -> dict[str, str]:
    """Every page a reader sees: README, the guides, and the markdown of every notebook."""
    texts = {"README.md": pages.README.read_text(encoding="utf-8")}
    texts |= {f"docs/{p.name}": p.read_text(encoding="utf-8") for p in sorted((REPO_ROOT / "docs").glob("*.md"))}
    for path in sorted([*NOTEBOOKS_DIR.glob("*.ipynb"), *NOTEBOOKS_DIR.glob("exercises/*.ipynb")]):
        nb = nbformat.read(path, as_version=4)
        texts[str(path.relative_to(REPO_ROOT))] = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return texts


def _results_md_seconds() -> dict[str, float]:
    rows = re.findall(r"^\| `(\d\d_[^`]+\.ipynb)` \| ([\d.]+) \|", pages.RESULTS_MD.read_text(encoding="utf-8"), re.MULTILINE)
    return {name: float(seconds) for name, seconds in rows}


def test_run_times_come_from_the_benchmark_record():
    """RESULTS.md and results.json hold the same lesson times, and every generated page quotes them."""
    assert pages.lesson_times() == _results_md_seconds(), (
        "benchmarks/results.json and benchmarks/RESULTS.md disagree: re-run `make benchmark`.")
    stale = pages.update_lesson_headers(check=True)
    stale += ["docs/instructor.md"] if pages.update_instructor_guide(check=True) else []
    assert not stale, f"regenerate with `python -m nullspace.course.pages` (or `make pages`): {stale}"


def test_no_page_quotes_a_run_time_of_its_own():
    """Each quoted lesson run time is one of the generated phrases, with RESULTS.md's figure."""
    allowed = {pages.run_time_phrase(s).split("the notebook ", 1)[1] for s in _results_md_seconds().values()}
    wrong = [f"{name}: {match.group(0)!r}" for name, text in _pages_with_text().items()
             for match in RUN_TIME_QUOTE.finditer(text)
             if not any(text[match.start():].startswith(phrase) for phrase in allowed)]
    assert not wrong, ("run times quoted outside the generated lines (say it with "
                       "`nullspace.course.pages.run_time_phrase`, or drop it):\n" + "\n".join(wrong))


def test_run_time_quote_pattern_catches_the_ways_pages_said_it():
    for said in ("the notebook runs in about three minutes", "runs in well under a minute", "(0.9 min measured)",
                 "the notebook runs in under 3 minutes", "runs in 2.2 min"):
        assert RUN_TIME_QUOTE.search(said), said
    assert not RUN_TIME_QUOTE.search("the benchmark takes 18 minutes")


def test_time_paragraph_replaces_the_whole_paragraph_and_requires_one(tmp_path: Path):
    lesson = SYLLABUS[0]
    source = "# Lesson\n\n**Time.** About 60 minutes; the notebook runs in well under a\nminute.\n\nNext paragraph."
    new = pages._with_time_paragraph(source, pages.time_paragraph(lesson, 30.0), "x.ipynb")
    assert new == ("# Lesson\n\n**Time.** A session of about 90 minutes with the exercises; the notebook runs in "
                   "0.5 min on a 2-core CPU (measured by `make benchmark`, `benchmarks/RESULTS.md`).\n\nNext paragraph.")
    for bad in ("# Lesson without a time", "**Time.** one\n\n**Time.** two"):
        try:
            pages._with_time_paragraph(bad, "x", "x.ipynb")
        except ValueError as error:
            assert "x.ipynb" in str(error) and "**Time.**" in str(error)
        else:
            raise AssertionError(f"accepted {bad!r}")
