"""ROME's rank-one edit of one FFN output matrix (Meng et al., NeurIPS 2022).

ROME inserts one key–value pair ``(k*, v*)`` into ``W`` while minimising the change on the keys
the layer already sees, weighted by their second moment ``C = E[k kᵀ]``. The closed form is a
rank-one update (ROME Eq. 2):

    Δ = (v* − W k*) (C⁻¹ k*)ᵀ / ((C⁻¹ k*)ᵀ k*),

so that ``(W + Δ) k* = v*`` exactly. A batch of requests is applied one request at a time; the
residual ``r = v* − W k*`` comes from the caller (the target vector minus the current output).
"""

from __future__ import annotations

import torch

from nullspace.editing._solve import as_float64, check_square

__all__ = ["rome_update"]


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
    """
    if key.ndim != 1 or residual.ndim != 1:
        raise ValueError(
            f"ROME edits one key at a time: expected vectors, got shapes {tuple(key.shape)} and "
            f"{tuple(residual.shape)}. Loop over the requests of a batch."
        )
    k = as_float64(key, "key")
    r = as_float64(residual, "residual").to(k.device)
    c = as_float64(key_covariance, "key_covariance").to(k.device)
    check_square(c, k.numel(), "key_covariance")
    if ridge < 0:
        raise ValueError(f"ridge must be non-negative, got {ridge}.")
    if ridge > 0:
        c = c + ridge * c.diagonal().mean() * torch.eye(k.numel(), dtype=torch.float64, device=k.device)
    left = torch.linalg.solve(c, k)  # C⁻¹ k*
    denominator = left @ k
    if not bool(denominator > 0):
        raise ValueError("kᵀ C⁻¹ k is not positive: the key covariance is not positive definite "
                         "on this key; raise `ridge`.")
    return torch.outer(r, left) / denominator
