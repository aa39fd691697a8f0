"""Argument checks shared by the whole package.

Every check raises an error that names the argument, says what was wrong with it and what to
do, *before* anything is computed or written into a model: a NaN learning rate must not end as a
NaN weight whose error blames "the keys".
"""

from __future__ import annotations

import math
import numbers
import weakref
from collections.abc import Iterable, Sequence

import numpy as np
import torch

__all__ = [
    "PSD_TOLERANCE",
    "mark_positive_semidefinite",
    "require_increasing_layers",
    "require_int",
    "require_number",
    "require_positive_semidefinite",
    "require_projector",
    "require_real_tensor",
]

# Negative eigenvalues down to -PSD_TOLERANCE · ‖C‖ count as round-off (a float32 covariance of
# width 6400 has them near -1e-6 · ‖C‖); a matrix that is indefinite by mistake (a difference of
# covariances, a random symmetric matrix) has them at the scale of ‖C‖ itself.
PSD_TOLERANCE = 1e-5


def require_number(value: object, name: str, *, minimum: float | None = None, strict: bool = False,
                   hint: str = "", allow_infinity: bool = False) -> float:
    """``value`` as a float after checking it is a finite real number, ``≥ minimum`` (``> minimum``
    when ``strict``); ``+inf`` passes too when ``allow_infinity`` (a bound that means "no bound").

    Raises:
        TypeError: not a real number (a string, a tensor of several values, a bool).
        ValueError: NaN, infinite, or out of range.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}.")
    number = float(value)
    bound = "" if minimum is None else f" {'>' if strict else '≥'} {minimum:g}"
    if not math.isfinite(number) and not (allow_infinity and number == math.inf):
        raise ValueError(f"{name} must be a finite number{bound}, got {number}. "
                         f"{hint or 'Check where the value came from (a division by zero, an unset setting).'}")
    if minimum is not None and (number <= minimum if strict else number < minimum):
        raise ValueError(f"{name} must be{bound}, got {number:g}. {hint}".rstrip())
    return number


def require_int(value: object, name: str, *, minimum: int | None = None, hint: str = "") -> int:
    """``value`` as an int after checking it is an integer (not a bool, not a float) ``≥ minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value}. {hint}".rstrip())
    return int(value)


def require_increasing_layers(layers: Sequence[int], name: str = "layers") -> tuple[int, ...]:
    """``layers`` as a tuple after checking it is a non-empty, strictly increasing sequence of
    block indices ≥ 0 (MEMIT spreads an edit over the layers in order, so order matters)."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise TypeError(f"{name} must be a sequence of block indices such as (0, 1), got "
                        f"{type(layers).__name__} {layers!r}.")
    result = tuple(require_int(layer, f"{name}[{i}]", minimum=0) for i, layer in enumerate(layers))
    if not result:
        raise ValueError(f"{name} is empty: give at least one block index to edit.")
    if list(result) != sorted(set(result)):
        raise ValueError(f"{name} must be strictly increasing without repeats, got {result}: an edit goes "
                         "through the layers in order (MEMIT spreads its residual over them). "
                         f"Pass {tuple(sorted(set(result)))}.")
    return result


def require_real_tensor(value: object, name: str, *, floating: bool = False, hint: str = "") -> torch.Tensor:
    """``value`` as a tensor (a numpy array is converted) after checking it holds real numbers
    (floating-point ones when ``floating``).

    Raises:
        TypeError: a Python list, a scalar, a complex or (with ``floating``) an integer tensor.
    """
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        advice = hint or f"convert it with torch.as_tensor({name}, dtype=torch.float64)"
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}; {advice}.")
    if value.is_complex():
        raise TypeError(f"{name} is complex ({value.dtype}); the null-space methods work on real matrices. "
                        f"Pass {name}.real only if the imaginary part is round-off.")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}: an integer tensor cannot "
                        f"hold the result. Convert it with {name}.double() (or .float()).")
    return value


# Tensors already found positive semi-definite, by identity and version: an editor passes the same
# C0 with every batch (every request, for ROME), and a check costs a d³ factorisation.
_CHECKED_PSD: dict[int, tuple[weakref.ref, int]] = {}


def _already_checked(tensor: torch.Tensor) -> bool:
    entry = _CHECKED_PSD.get(id(tensor))
    return entry is not None and entry[0]() is tensor and entry[1] == tensor._version


def _remember_checked(tensor: torch.Tensor) -> None:
    key = id(tensor)
    _CHECKED_PSD[key] = (weakref.ref(tensor, lambda _ref: _CHECKED_PSD.pop(key, None)), tensor._version)


def require_positive_semidefinite(matrix: torch.Tensor, name: str, *, original: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` unless the symmetric float64 ``matrix`` is positive semi-definite up to
    :data:`PSD_TOLERANCE` (a Cholesky factorisation of ``matrix + tol·‖matrix‖_F·I``).

    ``original`` (the caller's tensor before conversion) lets a repeated check of the same,
    unchanged tensor be skipped.
    """
    key = matrix if original is None else original
    if _already_checked(key):
        return
    scale = float(torch.linalg.matrix_norm(matrix))
    shifted = matrix + (PSD_TOLERANCE * scale + 1e-300) * torch.eye(matrix.shape[0], dtype=matrix.dtype,
                                                                      device=matrix.device)
    if int(torch.linalg.cholesky_ex(shifted).info) != 0:
        eigenvalues = torch.linalg.eigvalsh(matrix)
        raise ValueError(
            f"{name} is not positive semi-definite: its smallest eigenvalue is {float(eigenvalues[0]):.3g} "
            f"against a largest of {float(eigenvalues[-1]):.3g}. A second moment E[k kᵀ] = KᵀK/n never has "
            "negative eigenvalues: pass the uncentered covariance of the keys (not a difference of "
            "covariances, a precision matrix or an arbitrary symmetric matrix).")
    _remember_checked(key)
    if key is not matrix:
        _remember_checked(matrix)


def mark_positive_semidefinite(matrix: torch.Tensor) -> torch.Tensor:
    """Record that ``matrix`` is positive semi-definite by construction (a sum of Gram matrices
    ``KᵀK``, such as an editor's cache of edited keys), so that checks of it are skipped; returns it."""
    _remember_checked(matrix)
    return matrix


def require_projector(projector: torch.Tensor, name: str, *, tolerance: float = 1e-6, probes: int = 4) -> None:
    """Raise ``ValueError`` unless the float64 square ``projector`` is symmetric and idempotent
    (``P = Pᵀ = P²``) to ``tolerance`` (relative; pass about 1e-3 for a projector that was stored
    in float32).

    Idempotence is tested on ``probes`` fixed random vectors ``x``: ``‖P(Px) − Px‖ ≤ tol·‖Px‖``, which
    costs ``d²`` per probe instead of the ``d³`` of forming ``P²``; a matrix with any eigenvalue away
    from 0 and 1 fails it with probability one, whatever its scale.
    """
    scale = float(projector.abs().max()) if projector.numel() else 0.0
    asymmetry = float((projector - projector.T).abs().max()) if projector.numel() else 0.0
    if asymmetry > tolerance * max(scale, 1e-300):
        raise ValueError(f"{name} is not symmetric (max |P − Pᵀ| = {asymmetry:.3g}), so it is not an orthogonal "
                         "projector. Pass NullSpace.projector() (P = Û Ûᵀ), not the covariance C0 or its "
                         "eigenvectors.")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(projector.shape[0], probes, generator=generator, dtype=torch.float64).to(projector.device)
    px = projector @ x
    size = float(torch.linalg.matrix_norm(px))
    gap = float(torch.linalg.matrix_norm(projector @ px - px)) / max(size, 1e-300)
    if size > 0 and gap > tolerance:
        raise ValueError(f"{name} is not idempotent (‖P²x − Px‖ / ‖Px‖ = {gap:.3g} on random x), so it is not a "
                         "projector. Pass NullSpace.projector() (P = Û Ûᵀ, AlphaEdit Eq. 9), not the covariance "
                         "C0 or another square matrix.")
