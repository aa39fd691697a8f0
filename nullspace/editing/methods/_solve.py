"""Shape checks and float64 conversion shared by the closed-form editing solves."""

from __future__ import annotations

import torch

__all__ = ["as_float64", "check_keys_and_residuals", "check_square"]


def as_float64(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as a float64 tensor on its own device, after checking it is finite."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    x = x.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf entries; check the model and the targets.")
    return x


def check_keys_and_residuals(keys: torch.Tensor, residuals: torch.Tensor) -> tuple[int, int, int]:
    """Keys ``(u, d_in)`` and residuals ``(u, d_out)``, one row per edit: return ``(u, d_in, d_out)``."""
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
