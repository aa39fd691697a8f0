"""Continual-learning metrics from the accuracy matrix.

``R[i, j]`` is the accuracy (%) on task ``j`` after training task ``i`` (0-based here, ``T`` tasks;
entries with ``j > i`` are not defined in the task-incremental setting and are ignored).
"""

from __future__ import annotations

import numpy as np

__all__ = ["average_accuracy", "backward_transfer", "forgetting", "plasticity", "summarise"]


def _check(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"the accuracy matrix must be square (T, T), got shape {r.shape}.")
    if np.isnan(np.tril(r)).any():
        raise ValueError("the accuracy matrix has NaN on or below the diagonal: every R[i, j] with "
                         "j ≤ i must be measured.")
    return r


def average_accuracy(r: np.ndarray) -> float:
    """ACC = mean over j of R[T-1, j]: accuracy on every task after the last one."""
    r = _check(r)
    return float(r[-1].mean())


def backward_transfer(r: np.ndarray) -> float:
    """BWT = mean over j < T-1 of R[T-1, j] − R[j, j] (divided by T − 1, as in GEM's paper).

    Negative values are forgetting. Needs at least two tasks."""
    r = _check(r)
    t = r.shape[0]
    if t < 2:
        raise ValueError("backward transfer needs at least two tasks.")
    return float(np.mean([r[-1, j] - r[j, j] for j in range(t - 1)]))


def forgetting(r: np.ndarray) -> float:
    """Mean over j < T-1 of max over l < T-1 of R[l, j] − R[T-1, j]: the drop from each task's
    best accuracy."""
    r = _check(r)
    t = r.shape[0]
    if t < 2:
        raise ValueError("forgetting needs at least two tasks.")
    return float(np.mean([r[j:t - 1, j].max() - r[-1, j] for j in range(t - 1)]))


def plasticity(r: np.ndarray) -> float:
    """Mean of R[j, j]: how well each task is learnt right after training it."""
    r = _check(r)
    return float(np.mean(np.diag(r)))


def summarise(r: np.ndarray) -> dict[str, float]:
    """ACC, BWT, forgetting and plasticity of one accuracy matrix."""
    return {"ACC": average_accuracy(r), "BWT": backward_transfer(r), "forgetting": forgetting(r),
            "plasticity": plasticity(r)}
