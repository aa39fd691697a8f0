"""Spreading a batch's residual over the edited layers, in order (MEMIT Alg. 1; AlphaEdit §B).

Target vectors ``z`` are optimised at the output of the *last* edited layer. Each edited layer
then takes an equal share of what is still missing: for the i-th of ``L`` layers,

    R_i = (z − h_L(current model)) / (L − i),

with the keys ``K_i`` and the output ``h_L`` recomputed from the partly edited model, so that
earlier layers' updates are accounted for before the next layer is solved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nullspace.capture import weight_as_matrix
from nullspace.editing import architectures
from nullspace.validation import require_increasing_layers, require_int, require_real_tensor

__all__ = ["apply_delta", "ffn_output", "spread_over_layers"]

# (layer, keys (u, d_ff), residuals (u, d_model)) -> Δ (d_model, d_ff)
LayerSolve = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]


def ffn_output(model: nn.Module, layer: int) -> nn.Module:
    """The FFN output matrix ``W`` of block ``layer`` (GPT-2 ``c_proj``, GPT-J ``fc_out``, Llama
    ``down_proj``: :mod:`nullspace.editing.architectures`)."""
    return architectures.ffn_output(model, require_int(layer, "layer"))


@torch.no_grad()
def apply_delta(model: nn.Module, layer: int, delta: torch.Tensor) -> None:
    """Add ``Δ`` (``(d_model, d_ff)``, the paper's orientation) to ``W`` of ``layer`` in place.

    Raises (and writes nothing) when ``Δ`` has the wrong shape or holds NaN or infinite values.
    """
    delta = require_real_tensor(delta, "delta")
    weight = weight_as_matrix(ffn_output(model, layer))
    if delta.shape != weight.shape:
        raise ValueError(f"Δ has shape {tuple(delta.shape)} but W of layer {layer} is {tuple(weight.shape)}.")
    if not bool(torch.isfinite(delta).all()):
        raise ValueError(f"Δ for layer {layer} holds NaN or infinite values; nothing was written into the model. "
                         "Check the settings of the solve (λ, L2, ridge) and the target vectors.")
    weight.add_(delta.to(dtype=weight.dtype, device=weight.device))


def spread_over_layers(
    model: nn.Module,
    layers: Sequence[int],
    targets: torch.Tensor,
    keys_at: Callable[[int], torch.Tensor],
    outputs_now: Callable[[], torch.Tensor],
    solve: LayerSolve,
) -> dict[int, torch.Tensor]:
    """Edit ``layers`` in order so that the last one's output moves to ``targets``.

    Args:
        targets: ``z``, one row per request, ``(u, d_model)``.
        keys_at: the current keys at a layer, ``(u, d_ff)`` (recomputed after each layer's edit).
        outputs_now: the current output of the last edited layer at the subject, ``(u, d_model)``.
        solve: the method's closed form (MEMIT Eq. 15, AlphaEdit Eq. 14) for one layer.

    Returns:
        The ``Δ`` applied at each layer.
    """
    layers = require_increasing_layers(layers, "layers")
    applied: dict[int, torch.Tensor] = {}
    for i, layer in enumerate(layers):
        keys = keys_at(layer)
        residuals = (targets.to(torch.float64) - outputs_now().to(torch.float64)) / (len(layers) - i)
        delta = solve(layer, keys, residuals)
        apply_delta(model, layer, delta)
        applied[layer] = delta
    return applied
