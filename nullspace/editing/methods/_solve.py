"""Argument checks and float64 conversion shared by the closed-form editing solves."""

from __future__ import annotations

import torch

from nullspace.linalg import validate_covariance
from nullspace.validation import require_positive_semidefinite, require_projector, require_real_tensor

__all__ = ["as_covariance", "as_float64", "as_projector", "check_keys_and_residuals", "check_square"]


def as_float64(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as a float64 tensor on its own device, after checking it is a finite real tensor."""
    x = require_real_tensor(x, name).detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf entries; check the model and the targets.")
    return x


def check_keys_and_residuals(keys: torch.Tensor, residuals: torch.Tensor) -> tuple[int, int, int]:
    """Keys ``(u, d_in)`` and residuals ``(u, d_out)``, one row per edit: return ``(u, d_in, d_out)``."""
    keys, residuals = require_real_tensor(keys, "keys"), require_real_tensor(residuals, "residuals")
    if keys.ndim != 2 or residuals.ndim != 2:
        raise ValueError(
            f"keys and residuals must be matrices with one edit per row, got shapes "
            f"{tuple(keys.shape)} and {tuple(residuals.shape)}."
        )
    if keys.shape[0] != residuals.shape[0]:
        raise ValueError(
            f"keys and residuals must have one row per edit: {keys.shape[0]} keys but "
            f"{residuals.shape[0]} residuals."
        )
    if keys.shape[0] == 0:
        raise ValueError("no edit to apply: keys and residuals have zero rows.")
    return keys.shape[0], keys.shape[1], residuals.shape[1]


def check_square(matrix: torch.Tensor, dim: int, name: str) -> None:
    """Raise unless ``matrix`` is ``(dim, dim)``."""
    if matrix.shape != (dim, dim):
        raise ValueError(
            f"{name} must be a ({dim}, {dim}) matrix over the key dimension, got {tuple(matrix.shape)}."
        )


def as_covariance(matrix: torch.Tensor, name: str, dim: int, device: torch.device) -> torch.Tensor:
    """A second moment such as ``C0 = E[k kᵀ]`` or ``Kp Kpᵀ`` as float64 on ``device``, after checking
    it is a finite, real, symmetric, positive semi-definite ``(dim, dim)`` matrix.

    The positive semi-definiteness check (a ``d³`` factorisation) is done once per tensor and
    version, so an editor that passes the same ``C0`` with every batch pays for it once.
    """
    c = validate_covariance(matrix, name=name, device=device)
    check_square(c, dim, name)
    require_positive_semidefinite(c, name, original=matrix)
    return c


def as_projector(matrix: torch.Tensor, name: str, dim: int, device: torch.device) -> torch.Tensor:
    """An orthogonal projector ``P`` as float64 on ``device``, after checking it is a finite real
    ``(dim, dim)`` matrix with ``P = Pᵀ = P²`` (to 1e-6 relative, 1e-3 for one stored in lower precision)."""
    p = as_float64(matrix, name).to(device)
    check_square(p, dim, name)
    require_projector(p, name, tolerance=1e-6 if matrix.dtype == torch.float64 else 1e-3)
    return p
