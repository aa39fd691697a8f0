"""Run every benchmark of the course and time every lesson; write what the README quotes.

``python benchmarks/run_all.py`` (``make benchmark``):

1. runs each script ``benchmarks/*.py`` (except this one, ``_``-prefixed helpers and the tuning tool in
   ``TOOLS``) in its own
   process and keeps what it prints (method comparisons, cost ratios, …) and how long it took;
2. executes each lesson notebook top to bottom in a fresh kernel (into ``build/benchmark/``; the
   stored notebooks are left as they are) and times it;
3. writes ``benchmarks/RESULTS.md`` (the date and machine, the lesson times, each script's output)
   and ``benchmarks/results.json`` (the lesson times), then refreshes the run-time column of the
   README's syllabus and of the course index (``nullspace.course.pages``).

Exits non-zero when a script or a lesson failed; the failure is recorded in RESULTS.md too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

from nullspace.course import pages
from nullspace.course.execute import execute_notebook
from nullspace.course.exercises import solution_notebooks
from nullspace.paths import BUILD_DIR, REPO_ROOT

BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
RESULTS_MD = pages.RESULTS_MD
COURSE_BUDGET_MIN = 15  # the whole course, every lesson top to bottom, on a 2-core CPU


@dataclass(frozen=True)
class Run:
    """One timed piece of work: a benchmark script or a lesson."""

    name: str
    seconds: float
    ok: bool
    output: str


TOOLS = ("continual_tuning.py",)  # scripts that choose settings from a grid they are given, not benchmarks


def benchmark_scripts() -> list[Path]:
    return sorted(p for p in BENCHMARKS_DIR.glob("*.py")
                  if p.name != Path(__file__).name and not p.name.startswith("_") and p.name not in TOOLS)


def lesson_notebooks() -> list[Path]:
    """Every lesson, in order; the course index has no code and is left out."""
    return [p for p in solution_notebooks() if p != pages.COURSE_INDEX]


def run_script(script: Path) -> Run:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=False, env=os.environ | {"NULLSPACE_PROGRESS": "0"})
    seconds = time.perf_counter() - start
    output = result.stdout + (f"\n[exit code {result.returncode}]\n{result.stderr}" if result.returncode else "")
    return Run(script.name, seconds, result.returncode == 0, output)


def run_lesson(notebook: Path) -> Run:
    start = time.perf_counter()
    try:
        seconds = execute_notebook(notebook, BUILD_DIR / "benchmark" / notebook.name)
    except (CellExecutionError, CellTimeoutError, DeadKernelError):  # record it, go on with the others
        return Run(notebook.name, time.perf_counter() - start, False, traceback.format_exc(limit=3))
    return Run(notebook.name, seconds, True, "")


def machine_description() -> str:
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} cores, {model}, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, {platform.system()} {platform.release()}")


def results_markdown(date: str, machine: str, lessons: list[Run], scripts: list[Run]) -> str:
    lines = ["# Measured results", "",
             f"Measured on {date} by `make benchmark` (`benchmarks/run_all.py`) on: {machine}.", "",
             "## Lessons: execution time, top to bottom in a fresh kernel", ""]
    if lessons:
        total = sum(r.seconds for r in lessons)
        lines += ["| lesson | seconds | minutes | status |", "|---|---|---|---|"]
        lines += [f"| `{r.name}` | {r.seconds:.1f} | {r.seconds / 60:.1f} | {'ok' if r.ok else 'FAILED'} |"
                  for r in lessons]
        verdict = "within" if total <= COURSE_BUDGET_MIN * 60 else "OVER"
        lines += [(f"| **all lessons timed ({len(lessons)})** | {total:.1f} | {total / 60:.1f} | {verdict} the "
                   f"{COURSE_BUDGET_MIN}-minute budget for the whole course |"), ""]
        lines += [f"`{r.name}` failed:\n\n```text\n{r.output.strip()}\n```\n" for r in lessons if not r.ok]
    else:
        lines += ["No lessons were timed in this run.", ""]
    lines += ["## Benchmark scripts", ""]
    if not scripts:
        lines += ["No benchmark scripts were run.", ""]
    for r in scripts:
        status = "" if r.ok else " — FAILED"
        lines += [f"### `benchmarks/{r.name}` ({r.seconds:.0f} s{status})", "",
                  "```text", r.output.strip() or "(printed nothing)", "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["lessons", "scripts"],
                        help="run only the lessons or only the benchmark scripts")
    args = parser.parse_args(argv)
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    scripts, lessons = [], []
    if args.only != "lessons":
        for script in benchmark_scripts():
            scripts.append(run_script(script))
            print(f"{script.name:<48} {scripts[-1].seconds:7.1f} s  {'ok' if scripts[-1].ok else 'FAILED'}",
                  flush=True)
    if args.only != "scripts":
        for notebook in lesson_notebooks():
            lessons.append(run_lesson(notebook))
            print(f"{notebook.name:<48} {lessons[-1].seconds:7.1f} s  {'ok' if lessons[-1].ok else 'FAILED'}",
                  flush=True)
    machine = machine_description()
    RESULTS_MD.write_text(results_markdown(date, machine, lessons, scripts), encoding="utf-8")
    if lessons:
        times = {r.name: round(r.seconds, 1) for r in lessons if r.ok}
        pages.RESULTS_JSON.write_text(json.dumps({"date": date, "machine": machine, "lessons": times},
                                                 indent=2) + "\n", encoding="utf-8")
        pages.update_readme()
        pages.update_course_index()
    print(f"wrote {RESULTS_MD.relative_to(REPO_ROOT)}")
    return 0 if all(r.ok for r in scripts + lessons) else 1


if __name__ == "__main__":
    sys.exit(main())
