"""ROME's rank-one edit of one FFN output matrix (Meng et al., NeurIPS 2022).

ROME inserts one key–value pair ``(k*, v*)`` into ``W`` while minimising the change on the keys
the layer already sees, weighted by their second moment ``C = E[k kᵀ]``. The closed form is a
rank-one update (ROME Eq. 2):

    Δ = (v* − W k*) (C⁻¹ k*)ᵀ / ((C⁻¹ k*)ᵀ k*),

so that ``(W + Δ) k* = v*`` exactly. A batch of requests is applied one request at a time; the
residual ``r = v* − W k*`` comes from the caller (the target vector minus the current output).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nullspace.editing.methods._solve import as_covariance, as_float64
from nullspace.editing.methods.sequential import (
    SequentialEditor,
    TargetFunction,
    check_context_templates,
    request_keys,
    subject_outputs,
)
from nullspace.editing.requests import EditRequest
from nullspace.editing.spread import apply_delta
from nullspace.validation import require_number, require_real_tensor

__all__ = ["RomeEditor", "rome_update"]


def rome_update(
    key: torch.Tensor,
    residual: torch.Tensor,
    key_covariance: torch.Tensor,
    *,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """ROME's rank-one update ``r (C⁻¹k)ᵀ / (kᵀ C⁻¹ k)`` for one key ``k`` (d_in) and residual ``r``.

    Args:
        key: ``k*``, shape ``(d_in,)``.
        residual: ``v* − W k*``, shape ``(d_out,)``.
        key_covariance: ``C = E[k kᵀ]``, ``(d_in, d_in)``.
        ridge: ``C + ridge · mean(diag C) · I`` is inverted, so that a rank-deficient ``C`` (a small
            corpus) still gives a finite update; ``0`` for the plain formula.

    Returns:
        ``Δ`` of shape ``(d_out, d_in)``, float64, with ``Δ k* = r``.

    Raises:
        TypeError: an argument is not a real tensor, or ``ridge`` is not a number.
        ValueError: ``ridge`` is negative, NaN or infinite; ``key_covariance`` is not a symmetric,
            positive semi-definite ``(d_in, d_in)`` matrix; ``kᵀ C⁻¹ k`` is not positive.
    """
    ridge = require_number(ridge, "ridge", minimum=0.0,
                           hint="It adds ridge·mean(diag C)·I to C; 0 is the plain formula.")
    key, residual = require_real_tensor(key, "key"), require_real_tensor(residual, "residual")
    if key.ndim != 1 or residual.ndim != 1:
        raise ValueError(
            f"ROME edits one key at a time: expected vectors, got shapes {tuple(key.shape)} and "
            f"{tuple(residual.shape)}. Loop over the requests of a batch."
        )
    k = as_float64(key, "key")
    r = as_float64(residual, "residual").to(k.device)
    c = as_covariance(key_covariance, "key_covariance", k.numel(), k.device)
    if ridge > 0:
        c = c + ridge * c.diagonal().mean() * torch.eye(k.numel(), dtype=torch.float64, device=k.device)
    left = torch.linalg.solve(c, k)  # C⁻¹ k*
    denominator = left @ k
    if not bool(denominator > 0):
        raise ValueError("kᵀ C⁻¹ k is not positive: the key covariance is not positive definite "
                         "on this key; raise `ridge`.")
    return torch.outer(r, left) / denominator


class RomeEditor(SequentialEditor):
    """Sequential ROME: one rank-one update of one layer per request, requests in turn.

    Each request's target ``z`` is optimised at the edited layer's own output, against the model
    as edited by the requests before it; the key is averaged over the context templates.
    """

    name = "ROME"

    def __init__(self, model, tokenizer, layer: int, targets: TargetFunction, *,
                 key_covariance: torch.Tensor, context_templates: Sequence[str] = ("{}",),
                 ridge: float = 1e-6) -> None:
        super().__init__(model, [layer])
        if not callable(targets):
            raise TypeError(f"targets must be a function (model, tokenizer, requests, layer) -> z, such as "
                            f"TargetOptimizer(hparams), got {type(targets).__name__}.")
        self.tokenizer = tokenizer
        self.targets = targets
        self.context_templates = check_context_templates(context_templates)
        self.key_covariance = as_covariance(key_covariance, "key_covariance", self.key_dim(layer),
                                            next(model.parameters()).device)
        self.ridge = require_number(ridge, "ridge", minimum=0.0)

    def _edit_batch(self, requests: list[EditRequest]) -> None:
        (layer,) = self.layers
        for request in requests:
            z = self.targets(self.model, self.tokenizer, [request], layer)[0]
            key = request_keys(self.model, self.tokenizer, layer, [request], self.context_templates)[0]
            residual = z - subject_outputs(self.model, self.tokenizer, layer, [request])[0]
            apply_delta(self.model, layer, rome_update(key, residual, self.key_covariance, ridge=self.ridge))
