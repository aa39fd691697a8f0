"""ROME's rank-one edit of one FFN output matrix (Meng et al., NeurIPS 2022).

ROME inserts one key–value pair ``(k*, v*)`` into ``W`` while minimising the change on the keys
the layer already sees, weighted by their second moment ``C = E[k kᵀ]``. The closed form is a
rank-one update (ROME Eq. 2):

    Δ = (v* − W k*) (C⁻¹ k*)ᵀ / ((C⁻¹ k*)ᵀ k*),

so that ``(W + Δ) k* = v*`` exactly. A batch of requests is applied one request at a time; the
residual ``r = v* − W k*`` comes from the caller (the target vector minus the current output).
The official code takes the direction ``C⁻¹k`` from a key averaged over context templates and
the denominator from the bare prompt's key ``k*``, so that the insertion is exact where the
residual was read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nullspace.editing.hparams import TARGET_REFERENCES
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
    insertion_key: torch.Tensor | None = None,
    ridge: float = 1e-6,
) -> torch.Tensor:
    """ROME's rank-one update ``r (C⁻¹k)ᵀ / (k*ᵀ C⁻¹ k)`` (ROME Eq. 2, as ``compute_v`` writes it).

    Args:
        key: ``k``, the key averaged over context templates, shape ``(d_in,)``: it sets the
            update's direction ``C⁻¹k`` (ROME's ``compute_u``).
        residual: ``v* − W k*``, the change the value at ``k*`` must make, shape ``(d_out,)``.
        key_covariance: ``C = E[k kᵀ]``, ``(d_in, d_in)``.
        insertion_key: ``k*``, the key the residual was read at (the bare prompt's, in ROME's
            ``compute_v``); ``Δ k* = r`` exactly. None: ``k*`` is ``key`` (ROME Eq. 2 with one key).
        ridge: ``C + ridge · mean(diag C) · I`` is inverted, so that a rank-deficient ``C`` (a small
            corpus, units that never fire) still gives a finite update; ``0`` for the plain formula
            (the official code inverts ``C`` itself).

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
    target_key = k if insertion_key is None else as_float64(insertion_key, "insertion_key").to(k.device)
    if target_key.shape != k.shape:
        raise ValueError(f"insertion_key has shape {tuple(target_key.shape)} but key has {tuple(k.shape)}.")
    c = as_covariance(key_covariance, "key_covariance", k.numel(), k.device)
    if ridge > 0:
        c = c + ridge * c.diagonal().mean() * torch.eye(k.numel(), dtype=torch.float64, device=k.device)
    left = torch.linalg.solve(c, k)  # C⁻¹ k
    denominator = left @ target_key
    if not bool(denominator > 0):
        raise ValueError("k*ᵀ C⁻¹ k is not positive: the key covariance is not positive definite on this "
                         "key, or the averaged key points away from the insertion key; raise `ridge`.")
    return torch.outer(r, left) / denominator


class RomeEditor(SequentialEditor):
    """Sequential ROME: one rank-one update of one layer per request, requests in turn.

    As ROME's official ``compute_u``/``compute_v``: the update's direction comes from the key
    averaged over the context templates (a flat mean), the target ``z`` is optimised at the
    output of the layer's MLP (``target_at="mlp"``; ``"block"`` optimises it at the block output,
    as MEMIT does) against the model as edited by the requests before it, and the residual
    ``z − m`` is read at the bare prompt, where the update inserts it exactly (``insertion_key``
    of :func:`rome_update`).
    """

    name = "ROME"

    def __init__(self, model, tokenizer, layer: int, targets: TargetFunction, *,
                 key_covariance: torch.Tensor, context_templates: Sequence[str] = ("{}",),
                 target_at: str = "mlp", ridge: float = 1e-6) -> None:
        super().__init__(model, [layer])
        if not callable(targets):
            raise TypeError(f"targets must be a function (model, tokenizer, requests, layer) -> z, such as "
                            f"TargetOptimizer(hparams), got {type(targets).__name__}.")
        self.tokenizer = tokenizer
        self.targets = targets
        self.context_templates = check_context_templates(context_templates)
        self.key_covariance = as_covariance(key_covariance, "key_covariance", self.key_dim(layer),
                                            next(model.parameters()).device)
        if target_at not in TARGET_REFERENCES:
            raise ValueError(f"target_at must be one of {TARGET_REFERENCES}, got {target_at!r}.")
        self.target_at = target_at
        self.ridge = require_number(ridge, "ridge", minimum=0.0)

    def _edit_batch(self, requests: list[EditRequest]) -> None:
        (layer,) = self.layers
        for request in requests:
            z = self.targets(self.model, self.tokenizer, [request], layer)[0]
            key = request_keys(self.model, self.tokenizer, layer, [request], self.context_templates, "flat")[0]
            bare_key = request_keys(self.model, self.tokenizer, layer, [request], ("{}",))[0]
            residual = z - subject_outputs(self.model, self.tokenizer, layer, [request], self.target_at)[0]
            delta = rome_update(key, residual, self.key_covariance, insertion_key=bare_key, ridge=self.ridge)
            apply_delta(self.model, layer, delta)
