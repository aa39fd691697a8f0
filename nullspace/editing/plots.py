"""Figures of the editing lessons, in the course style (:mod:`nullspace.plots`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nullspace.editing.associative_memory import SequentialTrace
from nullspace.plots import COLORS, RULE_COLORS, use_course_style

__all__ = ["METHOD_COLORS", "plot_general_ability", "plot_hidden_shift", "plot_memory_traces", "plot_weight_change"]

# "MEMIT + Kp" (Eq. 15) before "MEMIT" (Table 1's baseline): a name takes the first prefix it matches.
METHOD_COLORS = {"unedited": COLORS["neutral"], "FT": "#937860", "ROME": COLORS["range"],
                 "MEMIT + Kp": COLORS["update"], "MEMIT": COLORS["bad"], "AlphaEdit": COLORS["null"]}


def _color(name: str, index: int) -> str:
    for key, color in METHOD_COLORS.items():
        if name.startswith(key):
            return color
    return RULE_COLORS[index % len(RULE_COLORS)]


def plot_memory_traces(ax_preserved: Axes, ax_edited: Axes, traces: Mapping[str, SequentialTrace]) -> None:
    """Relative error on preserved pairs (log scale) and on the pairs edited so far, per method."""
    for i, (name, trace) in enumerate(traces.items()):
        color = _color(name, i)
        style = "-" if i % 2 == 0 else "--"
        ax_preserved.semilogy(trace.edits, np.maximum(trace.preserved_error, 1e-17), style, color=color,
                              marker=".", label=name)
        ax_edited.plot(trace.edits, trace.edited_error, style, color=color, marker=".", label=name)
    ax_preserved.set(xlabel="edits so far", ylabel="‖ΔW K0‖ / ‖W K0‖", title="preserved pairs")
    ax_edited.set(xlabel="edits so far", ylabel="relative error", title="edited pairs (all so far)")
    ax_preserved.legend(fontsize=8)


def plot_general_ability(axes: Sequence[Axes], history: Mapping[str, Mapping[str, Sequence[float]]],
                         baseline: Mapping[str, float] | None = None) -> None:
    """Unedited-fact accuracy and perplexity against the number of edits (AlphaEdit Fig. 4 analogue).

    ``history[method]`` has lists ``edits``, ``fact_accuracy`` and ``perplexity``. Runs of the same
    method (same colour) after the first are dashed.
    """
    used: set[str] = set()
    for i, (name, h) in enumerate(history.items()):
        color = _color(name, i)
        style = "--" if color in used else "-"
        used.add(color)
        axes[0].plot(h["edits"], h["fact_accuracy"], style, marker=".", color=color, label=name)
        axes[1].plot(h["edits"], h["perplexity"], style, marker=".", color=color, label=name)
    if baseline:
        axes[0].axhline(baseline["fact_accuracy"], color=COLORS["neutral"], ls=":", label="unedited")
        axes[1].axhline(baseline["perplexity"], color=COLORS["neutral"], ls=":")
    axes[0].set(xlabel="edits so far", ylabel="accuracy on unedited facts (%)")
    axes[1].set(xlabel="edits so far", ylabel="perplexity on held-out text")
    axes[0].legend(fontsize=8)


def plot_weight_change(ax: Axes, history: Mapping[str, Mapping], layer: int | str) -> None:
    """``‖W − W_unedited‖_F`` of block ``layer`` against the number of edits, on a log scale
    (AlphaEdit Fig. 4's companion: how fast each method's update grows). ``history[method]`` has
    ``edits`` and ``weight_change[str(layer)]``."""
    for i, (name, h) in enumerate(history.items()):
        changes = h["weight_change"][str(layer)]
        ax.plot(h["edits"][1:], changes[1:], marker=".", color=_color(name, i), label=name)
    ax.set(xlabel="edits so far", ylabel=f"‖ΔW‖ of block {layer} (Frobenius)", yscale="log")


def plot_hidden_shift(before: torch.Tensor, after: Mapping[str, torch.Tensor], title: str = "",
                      panel_width: float = 4.0) -> Figure:
    """Preserved facts' hidden states before and after editing, in the unedited states' principal
    plane, with marginal densities on top and right (AlphaEdit Fig. 5 analogue).

    ``before`` and each ``after[method]`` are 2-D coordinates, ``(n, 2)``.
    """
    use_course_style()
    n = len(after)
    fig = plt.figure(figsize=(panel_width * n, 4.0), constrained_layout=True)
    grid = fig.add_gridspec(2, 2 * n, width_ratios=[4, 1] * n, height_ratios=[1, 4])
    for i, (name, points) in enumerate(after.items()):
        main = fig.add_subplot(grid[1, 2 * i])
        top = fig.add_subplot(grid[0, 2 * i], sharex=main)
        right = fig.add_subplot(grid[1, 2 * i + 1], sharey=main)
        for data, color, label in ((before, COLORS["data"], "before"), (points, _color(name, i), "after")):
            main.scatter(data[:, 0], data[:, 1], s=6, alpha=0.5, color=color, label=label)
            top.hist(data[:, 0].numpy(), bins=30, color=color, alpha=0.5, density=True)
            right.hist(data[:, 1].numpy(), bins=30, color=color, alpha=0.5, density=True, orientation="horizontal")
        main.set(xlabel="PC 1 (unedited)", ylabel="PC 2 (unedited)")
        main.legend(fontsize=8, markerscale=2)
        top.set_title(name)
        top.tick_params(labelbottom=False)
        right.tick_params(labelleft=False)
    if title:
        fig.suptitle(title)
    return fig
