"""Keep the README's syllabus table and the course index's lesson list in step with the lessons.

Both are generated from :data:`nullspace.course.syllabus.SYLLABUS`, the lesson notebooks that
exist, and the lesson run times that ``make benchmark`` measured (``benchmarks/results.json``):

* in ``README.md``, the text between ``<!-- syllabus:begin -->`` and ``<!-- syllabus:end -->``;
* in ``notebooks/00_course_index.ipynb``, the markdown cell tagged ``lesson-list``.

Run ``python -m nullspace.course.pages`` after adding a lesson or re-running the benchmark;
``--check`` only reports what is out of date (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

from nullspace.course.syllabus import SYLLABUS, lesson_notebook
from nullspace.paths import EXERCISES_DIR, NOTEBOOKS_DIR, REPO_ROOT

__all__ = ["lesson_times", "main", "syllabus_table", "update_course_index", "update_readme"]

README = REPO_ROOT / "README.md"
COURSE_INDEX = NOTEBOOKS_DIR / "00_course_index.ipynb"
RESULTS_JSON = REPO_ROOT / "benchmarks" / "results.json"
BEGIN, END = "<!-- syllabus:begin -->", "<!-- syllabus:end -->"
LESSON_LIST_TAG = "lesson-list"


def lesson_times(results: Path = RESULTS_JSON) -> dict[str, float]:
    """Seconds each lesson notebook took in the last ``make benchmark`` run, by file name."""
    if not results.exists():
        return {}
    return {name: float(s) for name, s in json.loads(results.read_text())["lessons"].items()}


def _run_time(seconds: float | None) -> str:
    return "not measured yet" if seconds is None else f"{seconds / 60:.1f} min"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args(argv)
    stale = [name for name, update in (("README.md", update_readme),
                                        (COURSE_INDEX.name, update_course_index))
             if update(check=args.check)]
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}. Run `python -m nullspace.course.pages`.")
        return 1
    print(("checked" if args.check else "updated") + f" syllabus pages ({len(stale)} changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
