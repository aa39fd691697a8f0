"""The editing figures draw from the package's own outputs; the Fig. 5 projection is exact."""

import matplotlib

matplotlib.use("Agg")

import torch

from nullspace.editing.associative_memory import SequentialTrace
from nullspace.editing.plots import plot_general_ability, plot_hidden_shift, plot_memory_traces
from nullspace.editing.evaluation.shift import mean_shift, principal_plane
from nullspace.plots import new_figure


def test_principal_plane_and_mean_shift():
    g = torch.Generator().manual_seed(0)
    before = torch.randn(50, 2, generator=g) @ torch.tensor([[3.0, 0, 0, 0], [0, 1.0, 0, 0]])
    after = before + torch.tensor([0.0, 0.0, 5.0, 0.0])  # a shift orthogonal to the plane
    plane_before, plane_after = principal_plane(before, after)
    assert torch.allclose(plane_before, plane_after, atol=1e-5)  # invisible in the plane
    assert mean_shift(before, before) == 0.0 and mean_shift(before, after) > 0.5


def test_figures_draw():
    trace = SequentialTrace(edits=[4, 8], preserved_error=[0.0, 1e-3], edited_error=[0.5, 0.2])
    fig, axes = new_figure(ncols=2)
    plot_memory_traces(axes[0, 0], axes[0, 1], {"MEMIT": trace, "AlphaEdit": trace})
    fig, axes = new_figure(ncols=2)
    history = {"edits": [0, 25], "fact_accuracy": [90.0, 80.0], "perplexity": [2.0, 2.5]}
    plot_general_ability(axes[0], {"MEMIT": history}, baseline={"fact_accuracy": 90.0, "perplexity": 2.0})
    points = torch.randn(30, 2)
    fig = plot_hidden_shift(points, {"MEMIT": points + 1, "AlphaEdit": points})
    assert len(fig.axes) == 6
