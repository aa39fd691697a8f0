"""AlphaEdit's null-space-constrained update (Fang et al., ICLR 2025, Eq. 12–14).

AlphaEdit projects the perturbation onto the null space of the preserved keys first,
``P = Û Ûᵀ`` (Eq. 8–9, built by :func:`nullspace.linalg.null_space`), so that
``(W + Δ P) K0 = W K0`` (Eq. 10), and then only has to fit the new edits, keep the earlier edits
``Kp`` and keep the update small (Eq. 12):

    min ‖(W + Δ̃P) K1 − V1‖² + ‖Δ̃P‖² + ‖Δ̃P Kp‖².

The normal equation (Eq. 13) gives (Eq. 14)

    Δ_AlphaEdit = R K1ᵀ P (Kp Kpᵀ P + K1 K1ᵀ P + I)⁻¹.

The official code solves the transposed system with the identity scaled by ``L2`` (10 for
GPT-2 XL):  ``Δᵀ = solve(P (K1 K1ᵀ + Kp Kpᵀ) + L2·I, P K1 Rᵀ)``; ``L2 = 1`` is Eq. 14 exactly.
Compared with MEMIT (Eq. 15) the only change is the ``P``: the "one line of code".

Keys and residuals are rows, as in :mod:`nullspace.editing.methods.memit`; ``Δ`` is ``(d_out, d_in)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from nullspace.editing.methods._solve import as_float64, check_keys_and_residuals, check_square
from nullspace.editing.methods.sequential import KeyValueEditor, TargetFunction, require_layers
from nullspace.linalg import NullSpace

__all__ = ["AlphaEditEditor", "alphaedit_update"]


def alphaedit_update(
    keys: torch.Tensor,
    residuals: torch.Tensor,
    projector: torch.Tensor,
    *,
    l2_weight: float = 1.0,
    edited_covariance: torch.Tensor | None = None,
    projected_edited_covariance: torch.Tensor | None = None,
) -> torch.Tensor:
    """AlphaEdit's update (Eq. 14) in the official solve form.

    Args:
        keys: ``K1ᵀ``, the new keys as rows, shape ``(u, d_in)``.
        residuals: ``Rᵀ``, shape ``(u, d_out)``.
        projector: ``P = Û Ûᵀ`` onto the null space of the preserved keys, ``(d_in, d_in)``
            (``NullSpace.projector()``).
        l2_weight: the weight of ``‖Δ̃P‖²`` (1 in Eq. 14; the official GPT-2 XL code uses 10).
        edited_covariance: ``Kp Kpᵀ`` of earlier batches, or None.
        projected_edited_covariance: ``P Kp Kpᵀ`` instead of ``edited_covariance``, for callers
            that keep it up to date batch by batch (saves a ``d³`` product per batch).

    Returns:
        ``Δ`` of shape ``(d_out, d_in)``, float64; ``Δ P = Δ``, so ``Δ K0 = 0`` whenever ``P K0 = 0``.
    """
    _, d_in, _ = check_keys_and_residuals(keys, residuals)
    if l2_weight <= 0:
        raise ValueError(f"l2_weight must be positive (the system is singular without it), got {l2_weight}.")
    k = as_float64(keys, "keys")
    r = as_float64(residuals, "residuals").to(k.device)
    p = as_float64(projector, "projector").to(k.device)
    check_square(p, d_in, "projector")
    if edited_covariance is not None and projected_edited_covariance is not None:
        raise ValueError("pass edited_covariance or projected_edited_covariance, not both.")
    # P (K1 K1ᵀ + Kp Kpᵀ), formed as (P K1)(K1ᵀ) so that the new keys cost d²·u, not d³.
    system = (p @ k.T) @ k
    if edited_covariance is not None:
        cp = as_float64(edited_covariance, "edited_covariance").to(k.device)
        check_square(cp, d_in, "edited_covariance")
        system = system + p @ cp
    if projected_edited_covariance is not None:
        pcp = as_float64(projected_edited_covariance, "projected_edited_covariance").to(k.device)
        check_square(pcp, d_in, "projected_edited_covariance")
        system = system + pcp
    system.diagonal().add_(l2_weight)
    return torch.linalg.solve(system, p @ (k.T @ r)).T


class AlphaEditEditor(KeyValueEditor):
    """Sequential AlphaEdit: Eq. 14 (official solve form) at every edited layer.

    The projectors are built once, before editing (``NullSpace.projector()`` of each layer's
    ``C0``), and ``P Kp Kpᵀ`` is kept up to date batch by batch, so a batch costs one ``d³`` solve
    per layer, like MEMIT's.
    """

    name = "AlphaEdit"

    def __init__(self, model, tokenizer, layers: Sequence[int], targets: TargetFunction, *,
                 null_spaces: Mapping[int, NullSpace], l2_weight: float,
                 context_templates: Sequence[str] = ("{}",), key_weighting: str = "grouped") -> None:
        super().__init__(model, tokenizer, layers, targets, context_templates=context_templates,
                         key_weighting=key_weighting)
        require_layers(null_spaces, layers, "null space", "build them with nullspace.linalg.null_space(C0, rule)")
        device = next(model.parameters()).device
        self.projectors = {layer: null_spaces[layer].projector().to(device) for layer in layers}
        self.l2_weight = l2_weight
        self.projected_edited_covariance: dict[int, torch.Tensor] = {}

    def reset(self) -> None:
        super().reset()
        self.projected_edited_covariance = {}

    def remember_keys(self, layer: int, keys: torch.Tensor) -> None:
        super().remember_keys(layer, keys)
        k = keys.to(self.projectors[layer].device, torch.float64)
        projected = (self.projectors[layer] @ k.T) @ k
        self.projected_edited_covariance[layer] = self.projected_edited_covariance.get(layer, 0) + projected

    def solve(self, layer: int, keys: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        return alphaedit_update(keys, residuals, self.projectors[layer], l2_weight=self.l2_weight,
                                projected_edited_covariance=self.projected_edited_covariance.get(layer))
