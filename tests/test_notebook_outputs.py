"""Every lesson's stored outputs are portable: nbval on another machine compares only what any
machine reproduces, and every figure left out of the comparison is checked by a claim instead.

Rules (CONTRIBUTING.md, "Portable outputs"; helpers in ``nullspace.course.report``):

1. A compared cell (not tagged ``nbval-ignore-output``) prints no round-off: no number in
   scientific notation at float32 or float64 round-off size (``e-07`` and below, a bound such as
   ``≤ 1e-12`` or ``< 1e-10`` is fine) and no negative zero (``-0.``, ``-0.00``), whose sign is
   round-off.
2. A cell tagged ``nbval-ignore-output`` whose text output holds a figure (a digit that is not a
   duration or an address, which nbval's sanitizer masks anyway) checks the claim it supports in the
   notebook: its source contains ``assert`` or calls one of the ``claim`` helpers, so nbval still
   fails on a machine where the claim breaks.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from nullspace.course.exercises import solution_notebooks

SANITIZE_CONFIG = Path(__file__).with_name("nbval_sanitize.cfg")
IGNORE_OUTPUT = "nbval-ignore-output"

_NOT_A_BOUND = r"(?<![<≤>≥])(?<![<≤>≥] )(?<![<>]=)(?<![<>]= )"
ROUND_OFF_NUMBER = re.compile(_NOT_A_BOUND + r"\b\d\.\d+e-(?:0[7-9]|[1-9]\d|\d{3})\b")
NEGATIVE_ZERO = re.compile(r"(?<![\w.])[-−]0(?:\.0*)?(?![\d.])")
CHECKED_CLAIM = re.compile(r"\bassert\b|\bclaim(?:_at_most|_at_least|_between)?\(")


def _sanitizers() -> list[tuple[str, str]]:
    return get_sanitize_patterns(SANITIZE_CONFIG.read_text(encoding="utf-8"))


def output_text(cell) -> str:
    """The text nbval compares: streams, and the text/plain of results and displays."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def compared_cell_problems(text: str) -> list[str]:
    """Round-off numbers and negative zeros in the text of a compared cell."""
    found = [f"round-off number {m.group(0)!r}" for m in ROUND_OFF_NUMBER.finditer(text)]
    found += [f"negative zero {m.group(0)!r}" for m in NEGATIVE_ZERO.finditer(text)]
    return found


def prints_a_figure(text: str) -> bool:
    """Whether text holds a digit once durations and addresses are masked as nbval masks them."""
    for pattern, replacement in _sanitizers():
        text = re.sub(pattern, replacement, text)
    return bool(re.search(r"\d", text))


def notebook_problems(path: Path) -> list[str]:
    """Every violation of rules 1 and 2 in one stored notebook, as 'cell N (nbval's Cell K): …' lines
    (N counts all cells from 0, as JupyterLab's cell list does; K counts code cells, as nbval does)."""
    nb = nbformat.read(path, as_version=4)
    code_cells = [(index, cell) for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    problems = []
    for nbval_index, (index, cell) in enumerate(code_cells):
        where = f"cell {index} (nbval's Cell {nbval_index})"
        text = output_text(cell)
        if IGNORE_OUTPUT in cell.get("metadata", {}).get("tags", []):
            if prints_a_figure(text) and not CHECKED_CLAIM.search(cell.source):
                problems.append(f"{where}: its output is left out of nbval's comparison and prints figures, "
                                "but the cell asserts no claim (use nullspace.course.report.claim… or assert)")
        else:
            problems += [f"{where}: prints a {what}; another machine prints other digits "
                         "(use nullspace.course.report)" for what in compared_cell_problems(text)]
    return problems


@pytest.mark.parametrize("path", solution_notebooks(), ids=lambda p: p.stem)
def test_stored_outputs_are_portable(path):
    problems = notebook_problems(path)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("text", [
    "discarded_mass=1.33e-16", "pair error 9.7e-16,", "preserved 3.8e-09", "‖W−W0‖ 6.0e-12",
    "tensor([1.2000e-17, 3.0000e+00])",
])
def test_round_off_numbers_are_found(text):
    assert compared_cell_problems(text)


@pytest.mark.parametrize("text", [
    "[ -0.        -0.         0.   124.885839]", "BWT -0.00", "[ 0.  0. -0.  0.]", "BWT   -0", "−0.0",
])
def test_negative_zeros_are_found(text):
    assert compared_cell_problems(text)


@pytest.mark.parametrize("text", [
    "≤ 1e-12", "< 1e-10", "max |x·Pg| < 1e-12: True", "λ ≤ 1e-10·λ_max (relative)", "energy 8.6e-05",
    "BWT -0.31", "−0.5", "[-0.5  0.01]", "1e-06·λ_max", "3e-08·λ_max", "‖ΔK0‖/‖WK0‖ ≤ 1e-10 (checked)",
    "θ = 5e-07", "range 10-0", "1.5e+03",
])
def test_portable_text_is_not_flagged(text):
    assert compared_cell_problems(text) == []


def _notebook_with(tmp_path: Path, source: str, output: str, tags: list[str]) -> Path:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": tags}, execution_count=1,
                                     outputs=[nbformat.v4.new_output("stream", name="stdout", text=output)])
    path = tmp_path / "01_example.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return path


def test_an_ignored_cell_printing_figures_must_check_a_claim(tmp_path):
    unchecked = _notebook_with(tmp_path, "print(acc)", "ACC 97.38\n", [IGNORE_OUTPUT])
    assert len(notebook_problems(unchecked)) == 1
    for source in ("print(acc)\nassert abs(acc - 97) < 2, acc", "print(acc)\nreport.claim('ACC', acc, 97, 2)",
                   "print(acc)\nclaim_at_least('ACC', acc, 90)"):
        assert notebook_problems(_notebook_with(tmp_path, source, "ACC 97.38\n", [IGNORE_OUTPUT])) == []


def test_an_ignored_cell_without_figures_needs_no_claim(tmp_path):
    for output in ("trained in 12.5 s\n", "<Figure at 0x7f3a2b>\n", "done\n"):
        assert notebook_problems(_notebook_with(tmp_path, "run()", output, [IGNORE_OUTPUT])) == []


def test_a_compared_cell_printing_round_off_is_reported(tmp_path):
    path = _notebook_with(tmp_path, "print(space)", "NullSpace(discarded_mass=1.91e-16)\n", [])
    assert notebook_problems(path) == ["cell 0 (nbval's Cell 0): prints a round-off number '1.91e-16'; another machine prints "
                                       "other digits (use nullspace.course.report)"]
    checked = "print(space)\nassert space.discarded_mass <= 1e-12"
    assert notebook_problems(_notebook_with(tmp_path, checked, "NullSpace(discarded_mass=1.91e-16)\n",
                                            [IGNORE_OUTPUT])) == []
