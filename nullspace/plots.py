"""The course's shared figure style and the figures both halves use.

Half-specific figures live in ``nullspace.continual.plots`` and ``nullspace.editing.plots``;
they start from :func:`new_figure` so every lesson looks alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nullspace.linalg import SelectionRule, null_space

__all__ = ["COLORS", "new_figure", "plot_spectrum", "use_course_style"]

COLORS = {
    "data": "#4C72B0",      # inputs / preserved knowledge
    "null": "#DD8452",      # null space / projected update
    "update": "#55A868",    # raw update
    "range": "#8172B3",     # protected (range) directions
    "bad": "#C44E52",       # forgetting, damage
    "neutral": "#7F7F7F",
}
RULE_COLORS = ["#DD8452", "#C44E52", "#55A868", "#8172B3", "#937860"]


def use_course_style() -> None:
    """Apply the course's matplotlib style (called by :func:`new_figure`)."""
    plt.rcParams.update({
        "figure.dpi": 90,
        "savefig.dpi": 90,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "font.size": 10,
        "axes.titlesize": 11,
        "legend.frameon": False,
    })


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2,
               **kwargs) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows × ncols`` panels in the course style; axes always as a 2-D array."""
    use_course_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             constrained_layout=True, **kwargs)
    return fig, axes


def plot_spectrum(ax: Axes, covariance: torch.Tensor, rules: Sequence[SelectionRule] = (),
                  title: str = "") -> None:
    """Eigenvalues of ``covariance`` (descending, log scale) with each rule's cut as a line
    (the style of Adam-NSCL Fig. 3). Eigenvalues below ``1e-20 · λ_max`` are drawn at that floor."""
    eigenvalues = null_space(covariance, rules[0], allow_empty=True).eigenvalues if rules else \
        torch.linalg.eigvalsh(torch.as_tensor(covariance, dtype=torch.float64)).abs().sort().values
    values = eigenvalues.flip(0).numpy()
    floor = values.max() * 1e-20  # exact zeros cannot be drawn on a log scale: show them at the floor
    values = np.maximum(values, floor)
    ax.semilogy(np.arange(1, len(values) + 1), values, ".-", color=COLORS["data"], ms=3, lw=1)
    for color, rule in zip(RULE_COLORS, rules):
        ns = null_space(covariance, rule, allow_empty=True)
        kept = ns.dim - ns.null_dim
        ax.axvline(kept + 0.5, color=color, ls="--", lw=1.2,
                   label=f"{rule.describe()}: {ns.null_dim} null")
    ax.set_xlabel("index (largest first)")
    ax.set_ylabel("eigenvalue")
    if title:
        ax.set_title(title)
    if rules:
        ax.legend(fontsize=8)
