"""The continual-learning figures, in the course style of :mod:`nullspace.plots`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nullspace.continual.trainer import RunResult
from nullspace.linalg import SelectionRule
from nullspace.plots import COLORS, RULE_COLORS, new_figure, plot_spectrum

__all__ = [
    "plot_accuracy_matrix",
    "plot_layer_spectra",
    "plot_null_dims",
    "plot_old_task_losses",
    "plot_stability_plasticity",
]


def plot_accuracy_matrix(ax: Axes, accuracy: np.ndarray, title: str = "") -> None:
    """Heatmap of ``R[i, j]`` (accuracy on task j after task i), numbers in the cells."""
    t = accuracy.shape[0]
    masked = np.ma.masked_invalid(accuracy)
    image = ax.imshow(masked, vmin=50, vmax=100, cmap="viridis")
    for i in range(t):
        for j in range(i + 1):
            ax.text(j, i, f"{accuracy[i, j]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if accuracy[i, j] < 80 else "black")
    ax.set_xticks(range(t), [str(j + 1) for j in range(t)])
    ax.set_yticks(range(t), [str(i + 1) for i in range(t)])
    ax.set_xlabel("evaluated on task j")
    ax.set_ylabel("after training task i")
    ax.grid(False)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="accuracy (%)")
    if title:
        ax.set_title(title)


def _method_colour(index: int) -> str:
    palette = [COLORS["bad"], COLORS["neutral"], COLORS["update"], COLORS["range"], COLORS["data"],
               COLORS["null"], *RULE_COLORS]
    return palette[index % len(palette)]


def plot_stability_plasticity(results: Sequence[RunResult]) -> Figure:
    """The paper's Fig. 5 in spirit: left, accuracy on task 1 after each task (stability);
    right, accuracy on each task right after learning it, R[t, t] (plasticity)."""
    fig, axes = new_figure(ncols=2)
    for index, result in enumerate(results):
        r = result.accuracy
        steps = np.arange(1, r.shape[0] + 1)
        axes[0, 0].plot(steps, r[:, 0], "o-", ms=3, color=_method_colour(index), label=result.method)
        axes[0, 1].plot(steps, np.diag(r), "o-", ms=3, color=_method_colour(index), label=result.method)
    axes[0, 0].set(title="stability: task 1 accuracy", xlabel="tasks learnt", ylabel="accuracy (%)")
    axes[0, 1].set(title="plasticity: R[t, t]", xlabel="task t", ylabel="accuracy (%)")
    axes[0, 1].legend(fontsize=8)
    return fig


def plot_old_task_losses(results: Sequence[RunResult], tasks: Sequence[int] = (0, 1, 2)) -> Figure:
    """The paper's Fig. 6 in spirit: the test loss of the first tasks, epoch by epoch, while the
    later tasks train (one panel per task, one line per method)."""
    fig, axes = new_figure(ncols=len(tasks))
    for panel, task in enumerate(tasks):
        ax = axes[0, panel]
        for index, result in enumerate(results):
            curve = result.loss_curves.get(task, [])
            if curve:
                x, y = zip(*curve)
                ax.plot(x, y, color=_method_colour(index), lw=1.2, label=result.method)
        epochs = results[0].epochs if results else 1
        for boundary in range((task + 1) * epochs, max((len(r.accuracy) for r in results), default=0) * epochs, epochs):
            ax.axvline(boundary, color=COLORS["neutral"], lw=0.5, alpha=0.4)
        ax.set(title=f"test loss of task {task + 1}", xlabel="epochs (all tasks)", yscale="log")
    axes[0, 0].set_ylabel("cross-entropy")
    axes[0, -1].legend(fontsize=8)
    return fig


def plot_layer_spectra(covariances: Mapping[str, torch.Tensor], rules: Sequence[SelectionRule]) -> Figure:
    """Eigenvalue spectrum of each layer's input covariance with each rule's cut (Fig. 3 style)."""
    fig, axes = new_figure(ncols=len(covariances))
    for ax, (name, covariance) in zip(axes[0], covariances.items()):
        plot_spectrum(ax, covariance, rules, title=f"{name} (d = {covariance.shape[0]})")
    return fig


def plot_null_dims(null_dims: Sequence[Mapping[str, int]], layer_dims: Mapping[str, int]) -> Figure:
    """Share of each layer's input space that is still free (null) after each task."""
    fig, axes = new_figure(width=5.0)
    ax = axes[0, 0]
    tasks = np.arange(1, len(null_dims) + 1)
    for index, (name, dim) in enumerate(layer_dims.items()):
        ax.plot(tasks, [100 * dims[name] / dim for dims in null_dims], "o-", ms=3,
                color=_method_colour(index + 2), label=f"{name} (d = {dim})")
    ax.set(xlabel="after task", ylabel="null-space dimension (% of d)", ylim=(0, 100),
           title="room left for new tasks")
    ax.legend(fontsize=8)
    return fig
