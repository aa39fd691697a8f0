"""Which regime a model is in: how much of a key survives AlphaEdit's projector.

AlphaEdit's guarantee ``(W + ΔP) K0 = W K0`` holds for keys with ``P k = 0``. Whether the
preserved knowledge is protected, and whether the edits can still be written, depends on where
the keys lie in ``C0``'s spectrum: ``‖P k‖ / ‖k‖`` near 0 for preserved keys (protected) and well
above 0 for edit keys (editable) is the regime the paper describes; preserved keys that keep a
large part of their length in the null space are not protected by the projector. Lesson 7 shows
both regimes; these functions let a user with real weights (GPT-2 XL, GPT-J, Llama 3) check theirs.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["projected_fraction", "regime_report", "spectrum_summary"]


def spectrum_summary(covariance: torch.Tensor | None = None, *, eigenvalues: torch.Tensor | None = None,
                     threshold: float | None = None) -> str:
    """One line on ``C0``'s spectrum: size, largest, median and smallest eigenvalue, the effective
    rank ``(Σλ)² / Σλ²``, and, with ``threshold``, how many eigenvalues fall below it and their
    share of the total mass. Pass ``eigenvalues`` when they are known (they are then not recomputed)."""
    if eigenvalues is None:
        if covariance is None:
            raise ValueError("pass covariance or eigenvalues.")
        eigenvalues = torch.linalg.eigvalsh(covariance.double())
    lam = np.sort(np.abs(eigenvalues.double().cpu().numpy()))
    effective_rank = lam.sum() ** 2 / max(float((lam ** 2).sum()), 1e-300)
    text = (f"C0 spectrum: d = {lam.size}, λmax {lam[-1]:.3g}, median {np.median(lam):.3g}, "
            f"λmin {lam[0]:.3g}, effective rank {effective_rank:.0f}")
    if threshold is not None:
        below = lam < threshold
        text += (f"; {int(below.sum())} eigenvalues < {threshold:g} holding "
                 f"{lam[below].sum() / max(lam.sum(), 1e-300):.2%} of the mass")
    return text


def projected_fraction(project, keys: torch.Tensor) -> np.ndarray:
    """``‖P k‖ / ‖k‖`` for each row ``k`` of ``keys`` (``project(x)`` returns ``x P`` row-wise)."""
    keys = keys.double()
    norms = keys.norm(dim=1).clamp_min(1e-300)
    projected = project(keys.float()).double() if keys.shape[1] else keys
    return (projected.norm(dim=1) / norms).cpu().numpy()


def regime_report(project, edit_keys: torch.Tensor, preserved_keys: torch.Tensor) -> str:
    """``‖Pk‖/‖k‖`` (median and range) for the edit keys and for preserved keys, in one line."""
    parts = []
    for name, keys in (("edit keys", edit_keys), ("preserved keys", preserved_keys)):
        ratio = projected_fraction(project, keys)
        parts.append(f"{name} ({len(ratio)}): median {np.median(ratio):.3f} "
                     f"[{ratio.min():.3f}, {ratio.max():.3f}]")
    return "‖Pk‖/‖k‖: " + "; ".join(parts)
