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
    record = run_all.updated_record({}, "2026-01-01", "2 cores, test CPU", "python benchmarks/run_all.py",
                                    lessons, scripts)
    assert record["lessons"] == {"01_a.ipynb": 600.0}
    text = run_all.results_markdown(record, [lessons[1]])
    assert "2 cores, test CPU" in text and "2026-01-01" in text and "`python benchmarks/run_all.py`" in text
    assert "| `01_a.ipynb` | 600.0 | 10.0 | ok |" in text
    assert "| `02_b.ipynb` | 360.0 | 6.0 | FAILED |" in text and "boom" in text
    assert "| 960.0 | 16.0 | OVER the 15-minute budget" in text
    assert "ACC 99.1" in text


def test_timing_only_the_lessons_keeps_the_scripts_output_and_its_date():
    scripts = [run_all.Run("compare.py", 12.0, True, "ACC 99.1")]
    first = run_all.updated_record({}, "2026-01-01 10:00 UTC", "CPU A", "python benchmarks/run_all.py",
                                   [run_all.Run("01_a.ipynb", 60.0, True, "")], scripts)
    again = run_all.updated_record(first, "2026-02-02 10:00 UTC", "CPU B", "python benchmarks/run_all.py --only lessons",
                                   [run_all.Run("01_a.ipynb", 50.0, True, "")], None)
    assert again["lessons"] == {"01_a.ipynb": 50.0} and again["date"] == "2026-02-02 10:00 UTC"
    assert again["scripts"] == first["scripts"]
    text = run_all.results_markdown(again)
    assert "Measured on 2026-02-02 10:00 UTC by `python benchmarks/run_all.py --only lessons` on: CPU B." in text
    assert "Measured on 2026-01-01 10:00 UTC by `python benchmarks/run_all.py` on: CPU A." in text
    assert "ACC 99.1" in text and "| `01_a.ipynb` | 50.0 |" in text
    scripts_only = run_all.updated_record(again, "2026-03-03 10:00 UTC", "CPU C", "python benchmarks/run_all.py --only scripts",
                                          None, [run_all.Run("compare.py", 9.0, False, "boom")])
    assert scripts_only["lessons"] == again["lessons"] and scripts_only["date"] == again["date"]
    assert "— FAILED" in run_all.results_markdown(scripts_only)
