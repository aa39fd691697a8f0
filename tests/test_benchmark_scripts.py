"""The XL-width and projector benchmarks run end to end at small sizes (their figures come from
full-size runs; these only check that the scripts work)."""

import json
import runpy
import sys

from nullspace.paths import REPO_ROOT


def run_script(name, argv, capsys):
    old = sys.argv
    sys.argv = [name, *argv]
    try:
        module = runpy.run_path(str(REPO_ROOT / "benchmarks" / name))
        assert module["main"](argv) == 0
    finally:
        sys.argv = old
    return capsys.readouterr().out


def test_gpt2_xl_width_script_at_small_width(capsys):
    out = run_script("gpt2_xl_width.py", ["--layers", "1", "2", "--texts", "4", "--requests", "2", "--vocab", "200",
                                          "--width", "32", "2", "128"], capsys)
    assert "update over layers" in out and "C0 spectrum" in out and "‖Pk‖/‖k‖: edit keys (2)" in out
    assert "peak resident memory" in out and "editor holds" in out


def test_projector_benchmark_at_small_size(capsys, tmp_path):
    out = run_script("projector_speed.py", ["--dim", "120", "--json", str(tmp_path / "p.json")], capsys)
    figures = json.loads((tmp_path / "p.json").read_text())
    assert "speed-up" in out and abs(figures["null_dim_package"] - figures["null_dim_float64"]) <= 2
    assert figures["max_abs_dP_package_vs_float64"] < 1e-2
