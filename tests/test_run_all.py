"""The course-wide benchmark runner: which scripts it runs and the table it writes."""

import importlib.util
import sys

from nullspace.paths import REPO_ROOT

spec = importlib.util.spec_from_file_location("run_all", REPO_ROOT / "benchmarks" / "run_all.py")
run_all = importlib.util.module_from_spec(spec)
sys.modules["run_all"] = run_all  # dataclasses look their module up there
spec.loader.exec_module(run_all)


def test_runs_every_benchmark_script_but_itself():
    names = {p.name for p in run_all.benchmark_scripts()}
    assert "run_all.py" not in names
    expected = {p.name for p in (REPO_ROOT / "benchmarks").glob("[!_]*.py")} - {"run_all.py", *run_all.TOOLS}
    assert names == expected


def test_results_table_reports_times_failures_and_the_course_budget():
    lessons = [run_all.Run("01_a.ipynb", 600.0, True, ""), run_all.Run("02_b.ipynb", 360.0, False, "boom")]
    scripts = [run_all.Run("compare.py", 12.0, True, "ACC 99.1")]
    text = run_all.results_markdown("2026-01-01", "2 cores, test CPU", lessons, scripts)
    assert "2 cores, test CPU" in text and "2026-01-01" in text
    assert "| `01_a.ipynb` | 600.0 | 10.0 | ok |" in text
    assert "| `02_b.ipynb` | 360.0 | 6.0 | FAILED |" in text and "boom" in text
    assert "| 960.0 | 16.0 | OVER the 15-minute budget" in text
    assert "ACC 99.1" in text
