"""How distinct the subjects' keys are: the geometry that decides whether an edit can be local."""

from __future__ import annotations

import torch

from nullspace.linalg import NullSpace

__all__ = ["effective_rank", "kept_share", "mean_abs_cosine"]


def effective_rank(rows: torch.Tensor) -> float:
    """Entropy effective rank (Roy & Vetterli, 2007) of the matrix whose rows are ``rows``:
    ``exp(H(p))`` with ``p_i = σ_i / Σ σ_j`` over its singular values. It equals ``r`` for ``r``
    orthogonal rows of equal norm and is near 1 when one direction dominates."""
    if rows.ndim != 2 or min(rows.shape) == 0:
        raise ValueError(f"expected a non-empty (n, d) matrix of row vectors, got shape {tuple(rows.shape)}.")
    singular = torch.linalg.svdvals(rows.double())
    p = singular / singular.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def mean_abs_cosine(rows: torch.Tensor, center: bool = True) -> float:
    """Mean ``|cos|`` between distinct rows, after subtracting the mean row when ``center``."""
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise ValueError(f"expected at least two row vectors, got shape {tuple(rows.shape)}.")
    x = rows.double()
    if center:
        x = x - x.mean(0)
    x = torch.nn.functional.normalize(x, dim=1)
    cos = x @ x.T
    off_diagonal = ~torch.eye(len(x), dtype=torch.bool)
    return float(cos[off_diagonal].abs().mean())


def kept_share(space: NullSpace, keys: torch.Tensor) -> torch.Tensor:
    """``‖P k‖ / ‖k‖`` per key (row): the share of each key that survives the null-space
    projector ``P`` (AlphaEdit Eq. 9). Near 1: an edit through ``P`` can still reach the key;
    near 0: the key lies in the protected span."""
    keys = keys.double()
    return space.project(keys).norm(dim=1) / keys.norm(dim=1)
