"""Run every benchmark of the course and time every lesson; write what the README quotes.

``python benchmarks/run_all.py`` (``make benchmark``):

1. runs each script ``benchmarks/*.py`` (except this one, ``_``-prefixed helpers and the tuning tool in
   ``TOOLS``) in its own
   process and keeps what it prints (method comparisons, cost ratios, …) and how long it took;
2. executes each lesson notebook top to bottom in a fresh kernel (into ``build/benchmark/``; the
   stored notebooks are left as they are) and times it;
3. records both in ``benchmarks/results.json`` (the lesson times, each script's output, and for each
   part the date, machine and command), writes ``benchmarks/RESULTS.md`` from that record, then
   refreshes every page that quotes a lesson's run time (``nullspace.course.pages``: the README's
   syllabus, the course index, each lesson's header and its exercise version, the instructor guide).

``--only lessons`` or ``--only scripts`` runs one part and keeps the other part's record (with its
own date) from the last run that made it, so that timing the lessons again does not erase the
scripts' output. Exits non-zero when a script or a lesson failed; the failure is recorded in
RESULTS.md too.
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
from collections.abc import Sequence
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


def _section_note(part: dict) -> str:
    return f"Measured on {part['date']} by `{part['command']}` on: {part['machine']}."


def results_markdown(record: dict, failed_lessons: Sequence[Run] = ()) -> str:
    """RESULTS.md from the record ``results.json`` holds: ``lessons`` (seconds by notebook, with
    ``date``, ``machine`` and ``command`` beside it) and ``scripts`` (``date``, ``machine``,
    ``command`` and ``runs``: name, seconds, ok, output). ``failed_lessons`` are this run's lessons
    that did not finish (they have no time to record)."""
    lines = ["# Measured results", "", "## Lessons: execution time, top to bottom in a fresh kernel", ""]
    times = record.get("lessons", {})
    if times or failed_lessons:
        total = sum(times.values()) + sum(r.seconds for r in failed_lessons)
        count = len(times) + len(failed_lessons)
        rows = [(name, seconds, "ok") for name, seconds in times.items()]
        rows += [(r.name, r.seconds, "FAILED") for r in failed_lessons]
        lines += [_section_note(record), "", "| lesson | seconds | minutes | status |", "|---|---|---|---|"]
        lines += [f"| `{name}` | {seconds:.1f} | {seconds / 60:.1f} | {status} |" for name, seconds, status in sorted(rows)]
        verdict = "within" if total <= COURSE_BUDGET_MIN * 60 else "OVER"
        lines += [(f"| **all lessons timed ({count})** | {total:.1f} | {total / 60:.1f} | {verdict} the "
                   f"{COURSE_BUDGET_MIN}-minute budget for the whole course |"), ""]
        lines += [f"`{r.name}` failed:\n\n```text\n{r.output.strip()}\n```\n" for r in failed_lessons]
    else:
        lines += ["No lesson timing is recorded (`python benchmarks/run_all.py --only lessons`).", ""]
    lines += ["## Benchmark scripts", ""]
    scripts = record.get("scripts")
    if not scripts:
        lines += ["No run of the benchmark scripts is recorded (`python benchmarks/run_all.py --only scripts`).", ""]
    else:
        lines += [_section_note(scripts), ""]
        for run in scripts["runs"]:
            status = "" if run["ok"] else " — FAILED"
            lines += [f"### `benchmarks/{run['name']}` ({run['seconds']:.0f} s{status})", "",
                      "```text", run["output"].strip() or "(printed nothing)", "```", ""]
    return "\n".join(lines)


def updated_record(old: dict, date: str, machine: str, command: str, lessons: list[Run] | None,
                   scripts: list[Run] | None) -> dict:
    """The record after a run: the part that ran (``lessons`` or ``scripts``, ``None`` when it did
    not run) replaces its predecessor with this run's date, machine and command; the other part is
    kept as ``old`` has it."""
    record = {key: old[key] for key in ("date", "machine", "command", "lessons", "scripts") if key in old}
    if lessons is not None:
        record.update(date=date, machine=machine, command=command,
                      lessons={r.name: round(r.seconds, 1) for r in lessons if r.ok})
    if scripts is not None:
        record["scripts"] = {"date": date, "machine": machine, "command": command,
                             "runs": [{"name": r.name, "seconds": round(r.seconds, 1), "ok": r.ok, "output": r.output}
                                      for r in scripts]}
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["lessons", "scripts"],
                        help="run only the lessons or only the benchmark scripts (the other part's record is kept)")
    args = parser.parse_args(argv)
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/run_all.py" + (f" --only {args.only}" if args.only else "")
    scripts, lessons = None, None
    if args.only != "lessons":
        scripts = []
        for script in benchmark_scripts():
            scripts.append(run_script(script))
            print(f"{script.name:<48} {scripts[-1].seconds:7.1f} s  {'ok' if scripts[-1].ok else 'FAILED'}",
                  flush=True)
    if args.only != "scripts":
        lessons = []
        for notebook in lesson_notebooks():
            lessons.append(run_lesson(notebook))
            print(f"{notebook.name:<48} {lessons[-1].seconds:7.1f} s  {'ok' if lessons[-1].ok else 'FAILED'}",
                  flush=True)
    old = json.loads(pages.RESULTS_JSON.read_text(encoding="utf-8")) if pages.RESULTS_JSON.is_file() else {}
    record = updated_record(old, date, machine_description(), command, lessons, scripts)
    pages.RESULTS_JSON.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    RESULTS_MD.write_text(results_markdown(record, [r for r in lessons or [] if not r.ok]), encoding="utf-8")
    if lessons:
        pages.main([])   # every page that quotes a lesson's run time, and the exercise versions
    print(f"wrote {RESULTS_MD.relative_to(REPO_ROOT)}")
    return 0 if all(r.ok for r in (scripts or []) + (lessons or [])) else 1


if __name__ == "__main__":
    sys.exit(main())
