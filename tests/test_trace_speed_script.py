"""The trace-speed benchmark runs on one fact and reports both timings and their difference."""

import runpy

from nullspace.paths import REPO_ROOT


def test_trace_speed_script_on_one_fact(capsys, one_thread):
    module = runpy.run_path(str(REPO_ROOT / "benchmarks" / "trace_speed.py"))
    assert module["main"](["--facts", "1"]) == 0
    out = capsys.readouterr().out
    assert "one forward per restoration (max_batch_rows=10)" in out and "batched restorations" in out
    difference = float(out.rsplit("indirect effects: ", 1)[1].split()[0])
    assert difference < 1e-5  # batching the restorations does not change the trace
