"""Keep every page that quotes a lesson's run time or session length in step with one source.

Generated from :data:`nullspace.course.syllabus.SYLLABUS` (topics, session lengths), the lesson
notebooks that exist, and the lesson run times that ``make benchmark`` measured
(``benchmarks/results.json``, the figures of ``benchmarks/RESULTS.md``):

* in ``README.md``, the text between ``<!-- syllabus:begin -->`` and ``<!-- syllabus:end -->``;
* in ``notebooks/00_course_index.ipynb``, the markdown cell tagged ``lesson-list``;
* in each lesson notebook, the ``**Time.**`` paragraph of its first cell;
* in ``docs/instructor.md``, each ``### Lesson N — …`` heading.

Nowhere else may a page quote a lesson's run time (``tests/test_pages.py`` looks for one).

Run ``python -m nullspace.course.pages`` after adding a lesson or re-running the benchmark;
``--check`` only reports what is out of date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

from nullspace.course.exercises import write_exercise_notebooks
from nullspace.course.syllabus import SYLLABUS, Lesson, lesson_notebook
from nullspace.paths import EXERCISES_DIR, NOTEBOOKS_DIR, REPO_ROOT

__all__ = ["instructor_heading", "lesson_times", "main", "run_time_phrase", "syllabus_table", "time_paragraph",
           "update_course_index", "update_instructor_guide", "update_lesson_headers", "update_readme"]

README = REPO_ROOT / "README.md"
COURSE_INDEX = NOTEBOOKS_DIR / "00_course_index.ipynb"
RESULTS_JSON = REPO_ROOT / "benchmarks" / "results.json"
RESULTS_MD = REPO_ROOT / "benchmarks" / "RESULTS.md"
INSTRUCTOR_GUIDE = REPO_ROOT / "docs" / "instructor.md"
TIME_PREFIX = "**Time.**"
INSTRUCTOR_HEADING = re.compile(r"^### Lesson (\d+) — .*$", re.MULTILINE)
BEGIN, END = "<!-- syllabus:begin -->", "<!-- syllabus:end -->"
LESSON_LIST_TAG = "lesson-list"


def lesson_times(results: Path = RESULTS_JSON) -> dict[str, float]:
    """Seconds each lesson notebook took in the last ``make benchmark`` run, by file name."""
    if not results.exists():
        return {}
    return {name: float(s) for name, s in json.loads(results.read_text())["lessons"].items()}


def _run_time(seconds: float | None) -> str:
    return "not measured yet" if seconds is None else f"{seconds / 60:.1f} min"


def run_time_phrase(seconds: float | None) -> str:
    """How every page says how long a lesson notebook takes top to bottom (minutes, one decimal)."""
    if seconds is None:
        return "the notebook's run time is not measured yet"
    return f"the notebook runs in {_run_time(seconds)} on a 2-core CPU"


def time_paragraph(lesson: Lesson, seconds: float | None) -> str:
    """The ``**Time.**`` paragraph of a lesson notebook's first cell."""
    return (f"{TIME_PREFIX} A session of about {lesson.session_minutes} minutes with the exercises; "
            f"{run_time_phrase(seconds)} (measured by `make benchmark`, `benchmarks/RESULTS.md`).")


def instructor_heading(lesson: Lesson, seconds: float | None) -> str:
    """A lesson's heading in the instructor guide: its topic, session length and run time."""
    return f"### Lesson {lesson.number} — {lesson.topic} (about {lesson.session_minutes} minutes; {run_time_phrase(seconds)})"


def syllabus_table(link_prefix: str, times: dict[str, float]) -> str:
    """The syllabus as a markdown table; links to notebooks start with ``link_prefix``."""
    header = ("| # | lesson (solution · exercises) | you will learn | papers: equations, figures "
              "| measured run time, 2-core CPU |\n|---|---|---|---|---|")
    rows = [header]
    for lesson in SYLLABUS:
        notebook = lesson_notebook(lesson)
        if notebook is None:
            title = f"{lesson.topic} *(in preparation)*"
            seconds = None
        else:
            title = f"[{lesson.topic}]({link_prefix}{notebook.name})"
            if (EXERCISES_DIR / notebook.name).exists():
                title += f" · [exercises]({link_prefix}exercises/{notebook.name})"
            seconds = times.get(notebook.name)
        rows.append(f"| {lesson.number} | {title} | {lesson.objectives} | {lesson.papers} "
                    f"| {_run_time(seconds)} |")
    return "\n".join(rows)


def _readme_text(current: str, times: dict[str, float]) -> str:
    if current.count(BEGIN) != 1 or current.count(END) != 1:
        raise ValueError(f"README.md must contain exactly one '{BEGIN}' … '{END}' block.")
    head, rest = current.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{syllabus_table('notebooks/', times)}\n{END}{tail}"


def update_readme(check: bool = False, times: dict[str, float] | None = None) -> bool:
    """Rewrite the README's syllabus block; return True if it was (or, with check, is) stale."""
    current = README.read_text(encoding="utf-8")
    text = _readme_text(current, lesson_times() if times is None else times)
    if text != current and not check:
        README.write_text(text, encoding="utf-8")
    return text != current


def update_course_index(check: bool = False, times: dict[str, float] | None = None) -> bool:
    """Rewrite the index notebook's lesson list; return True if it was (or, with check, is) stale."""
    current = COURSE_INDEX.read_text(encoding="utf-8")
    nb = nbformat.reads(current, as_version=4)
    tagged = [c for c in nb.cells if LESSON_LIST_TAG in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1 or tagged[0].cell_type != "markdown":
        raise ValueError(f"{COURSE_INDEX.name} must have exactly one markdown cell tagged "
                         f"'{LESSON_LIST_TAG}' (the generated lesson list).")
    tagged[0].source = ("## The lessons\n\n"
                        + syllabus_table("", lesson_times() if times is None else times))
    text = nbformat.writes(nb) + "\n"
    if text != current and not check:
        COURSE_INDEX.write_text(text, encoding="utf-8")
    return text != current


def _with_time_paragraph(source: str, paragraph: str, name: str) -> str:
    lines = source.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith(TIME_PREFIX)]
    if len(starts) != 1:
        raise ValueError(f"{name}: the first cell must hold exactly one paragraph starting with '{TIME_PREFIX}' "
                         f"(found {len(starts)}); add one where the lesson states its length.")
    end = starts[0] + 1
    while end < len(lines) and lines[end].strip():
        end += 1
    return "\n".join(lines[:starts[0]] + [paragraph] + lines[end:])


def update_lesson_headers(check: bool = False, times: dict[str, float] | None = None) -> list[str]:
    """Rewrite each lesson notebook's ``**Time.**`` paragraph; return the names that were (or,
    with check, are) stale. The learner versions follow with ``python -m nullspace.course.exercises``."""
    times = lesson_times() if times is None else times
    stale = []
    for lesson in SYLLABUS:
        notebook = lesson_notebook(lesson)
        if notebook is None:
            continue
        current = notebook.read_text(encoding="utf-8")
        nb = nbformat.reads(current, as_version=4)
        first = nb.cells[0]
        source = _with_time_paragraph(first.source, time_paragraph(lesson, times.get(notebook.name)), notebook.name)
        if source != first.source:
            stale.append(notebook.name)
            if not check:
                first.source = source
                notebook.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return stale


def update_instructor_guide(check: bool = False, times: dict[str, float] | None = None) -> bool:
    """Rewrite the guide's ``### Lesson N — …`` headings; return True if it was (or, with check, is) stale."""
    times = lesson_times() if times is None else times
    by_number = {lesson.number: lesson for lesson in SYLLABUS}
    current = INSTRUCTOR_GUIDE.read_text(encoding="utf-8")

    def heading(match: re.Match) -> str:
        number = int(match.group(1))
        if number not in by_number:
            raise ValueError(f"{INSTRUCTOR_GUIDE.name}: a heading names lesson {number}, which the syllabus has not.")
        notebook = lesson_notebook(by_number[number])
        return instructor_heading(by_number[number], times.get(notebook.name) if notebook else None)

    text = INSTRUCTOR_HEADING.sub(heading, current)
    if text != current and not check:
        INSTRUCTOR_GUIDE.write_text(text, encoding="utf-8")
    return text != current


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args(argv)
    stale = [name for name, update in (("README.md", update_readme),
                                        (COURSE_INDEX.name, update_course_index),
                                        (INSTRUCTOR_GUIDE.name, update_instructor_guide))
             if update(check=args.check)]
    headers = update_lesson_headers(check=args.check)
    if headers and not args.check:
        write_exercise_notebooks()  # the learner versions carry the header too
    stale += headers
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}. Run `python -m nullspace.course.pages`.")
        return 1
    print(("checked" if args.check else "updated") + f" syllabus pages ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
