"""The null-space core shared by both halves of the course.

Both papers protect what a linear map already does on some inputs by restricting its update to
the (approximate) right null space of those inputs:

* Adam-NSCL (Wang et al., CVPR 2021): the inputs are a layer's features on earlier tasks; the
  uncentered covariance is averaged across tasks (Eq. 4), decomposed by SVD (Eq. 5), and the
  optimizer's update is projected with ``U2 U2ᵀ`` (Eq. 6).
* AlphaEdit (Fang et al., ICLR 2025): the inputs are the FFN keys of preserved knowledge ``K0``;
  ``K0 K0ᵀ`` is decomposed (Eq. 8), the projector is ``P = Û Ûᵀ`` (Eq. 9), and ``(W + ΔP) K0 = W K0``
  (Eq. 10).

Conventions used throughout the package:

* Inputs are stored as rows: ``X`` has shape ``(n, d)``; the layer computes ``X @ w`` with ``w`` of
  shape ``(d, out)``, or equivalently ``W @ x`` with ``W = wᵀ`` of shape ``(out, d)``.
* An update ``Δ`` of shape ``(..., d)`` is projected along its last axis: ``Δ @ P``. Then
  ``X (Δ P)ᵀ = X P Δᵀ = 0`` whenever ``X P = 0``.
* Eigen-decompositions run in float64: float32 covariances put their "zero" eigenvalues near
  ``1e-7 · λ_max``, which is where the selection rules have to cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import torch

from nullspace.validation import PSD_TOLERANCE, require_int, require_number, require_real_tensor

__all__ = [
    "AbsoluteRule",
    "CovarianceAccumulator",
    "EmptyNullSpaceError",
    "EnergyRule",
    "FullNullSpaceError",
    "MinRatioRule",
    "NullSpace",
    "RelativeRule",
    "SelectionRule",
    "null_space",
    "null_space_projector",
    "require_psd_spectrum",
    "validate_covariance",
]

ArrayLike = torch.Tensor | np.ndarray


class EmptyNullSpaceError(ValueError):
    """Raised when a selection rule keeps no direction at all (nothing could be updated)."""


class FullNullSpaceError(ValueError):
    """Raised when a selection rule counts every direction as null although the covariance is not
    zero: ``P = I`` then protects nothing (the mirror image of :class:`EmptyNullSpaceError`)."""


def _as_float64(x: ArrayLike, name: str) -> torch.Tensor:
    x = require_real_tensor(x, name, hint="pass a torch.Tensor or numpy.ndarray")
    return x.detach().to(dtype=torch.float64, device="cpu")


def _require_finite(x: torch.Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or Inf entries. Check the inputs that produced it "
            "(a diverged model, an empty batch divided by zero) before computing a null space."
        )


class CovarianceAccumulator:
    """Streaming uncentered covariance ``XᵀX / n`` of row vectors, kept in float64.

    Feed mini-batches with :meth:`update`; read :attr:`covariance`. Accumulating the sum
    ``Σ xxᵀ`` and the count ``n`` makes the task-to-task merge of Adam-NSCL Eq. 4,

        ``X̄_t = (n̄_{t-1} / n̄_t) X̄_{t-1} + (n_t / n̄_t) X_t``,

    exact: :meth:`merge` adds sums and counts, which is that sample-weighted average.
    """

    def __init__(self, dim: int) -> None:
        self.dim = require_int(dim, "dim", minimum=1, hint="It is the length of one input row.")
        self.sum = torch.zeros(dim, dim, dtype=torch.float64)
        self.count = 0

    def update(self, x: ArrayLike) -> None:
        """Add a batch of inputs ``x`` of shape ``(n, dim)`` (rows are samples)."""
        x = _as_float64(x, "x")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"expected a batch of shape (n, {self.dim}) with one input per row, got "
                f"{tuple(x.shape)}. Flatten or unfold layer inputs first (see nullspace.capture)."
            )
        _require_finite(x, "the batch")
        self.sum += x.T @ x
        self.count += x.shape[0]

    @property
    def covariance(self) -> torch.Tensor:
        """The uncentered covariance ``Σ xxᵀ / n`` (float64, shape ``(dim, dim)``)."""
        if self.count == 0:
            raise ValueError("no samples were added yet: call update() with at least one batch.")
        return self.sum / self.count

    def merge(self, other: CovarianceAccumulator) -> CovarianceAccumulator:
        """A new accumulator over both sample sets: the sample-weighted mean of Eq. 4."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge covariances of dimension {self.dim} and {other.dim}.")
        merged = CovarianceAccumulator(self.dim)
        merged.sum = self.sum + other.sum
        merged.count = self.count + other.count
        return merged

    def __repr__(self) -> str:
        return f"CovarianceAccumulator(dim={self.dim}, count={self.count})"


def validate_covariance(matrix: ArrayLike, *, symmetry_tol: float = 1e-6, name: str = "the covariance",
                        device: torch.device | str | None = "cpu") -> torch.Tensor:
    """Return ``matrix`` as float64 (on ``device``; None keeps its own) after checking it is a
    finite, real, square, symmetric matrix.

    Raises ``TypeError`` (not a real tensor) or ``ValueError`` naming the problem and ``name``.
    """
    c = require_real_tensor(matrix, name, hint="pass a torch.Tensor or numpy.ndarray")
    c = c.detach().to(dtype=torch.float64, device=c.device if device is None else device)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(
            f"{name} must be a square (d, d) matrix, got shape {tuple(c.shape)}. "
            "If you hold the inputs X of shape (n, d), pass X.T @ X / n (or use "
            "CovarianceAccumulator)."
        )
    _require_finite(c, name)
    scale = float(c.abs().max()) if c.numel() else 0.0
    asym = float((c - c.T).abs().max()) if c.numel() else 0.0
    if asym > symmetry_tol * max(scale, 1e-300):
        raise ValueError(
            f"{name} is not symmetric (max |C - Cᵀ| = {asym:.3g}, max |C| = {scale:.3g}). "
            "An uncentered covariance XᵀX/n is always symmetric; symmetrise with (C + C.T) / 2 "
            "if the asymmetry is round-off."
        )
    return c


class SelectionRule(Protocol):
    """Decides which eigenvalues of a covariance count as "zero" (the approximate null space)."""

    def null_mask(self, eigenvalues: torch.Tensor) -> torch.Tensor:
        """Boolean mask over ``eigenvalues`` (ascending, non-negative) marking null directions."""
        ...

    def describe(self) -> str:
        """A short human-readable statement of the rule."""
        ...


def _check_positive(value: float, name: str, rule: str) -> None:
    require_number(value, f"{rule}: {name}", minimum=0.0)


@dataclass(frozen=True)
class MinRatioRule:
    """Adam-NSCL's rule: null directions have ``λ ≤ a · λ_min`` (paper §4.2; a = 10 to 50).

    Scale-free, but fragile: on a rank-deficient covariance ``λ_min`` is float noise and the rule
    keeps only the few noise-level directions; on a small full-rank one it may keep almost all.
    """

    a: float = 10.0

    def __post_init__(self) -> None:
        _check_positive(self.a, "a", "MinRatioRule")

    def null_mask(self, eigenvalues: torch.Tensor) -> torch.Tensor:
        return eigenvalues <= self.a * eigenvalues.min()

    def threshold(self, eigenvalues: torch.Tensor) -> float:
        return float(self.a * eigenvalues.min())

    def describe(self) -> str:
        return f"λ ≤ {self.a:g}·λ_min (Adam-NSCL)"


@dataclass(frozen=True)
class AbsoluteRule:
    """AlphaEdit's rule: null directions have ``λ < threshold`` (official code: 2e-2 on E[kkᵀ])."""

    threshold_value: float = 2e-2

    def __post_init__(self) -> None:
        _check_positive(self.threshold_value, "threshold_value", "AbsoluteRule")

    def null_mask(self, eigenvalues: torch.Tensor) -> torch.Tensor:
        return eigenvalues < self.threshold_value

    def threshold(self, eigenvalues: torch.Tensor) -> float:
        return float(self.threshold_value)

    def describe(self) -> str:
        return f"λ < {self.threshold_value:g} (absolute, AlphaEdit)"


@dataclass(frozen=True)
class RelativeRule:
    """Null directions have ``λ ≤ ratio · λ_max``: scale-free and robust to float noise."""

    ratio: float = 1e-3

    def __post_init__(self) -> None:
        _check_positive(self.ratio, "ratio", "RelativeRule")

    def null_mask(self, eigenvalues: torch.Tensor) -> torch.Tensor:
        return eigenvalues <= self.ratio * eigenvalues.max()

    def threshold(self, eigenvalues: torch.Tensor) -> float:
        return float(self.ratio * eigenvalues.max())

    def describe(self) -> str:
        return f"λ ≤ {self.ratio:g}·λ_max (relative)"


@dataclass(frozen=True)
class EnergyRule:
    """GPM's rule: keep the top directions holding ``fraction`` of the eigenvalue mass; the rest
    are null. ``fraction = 0.99`` protects 99% of the inputs' energy (Saha et al., ICLR 2021)."""

    fraction: float = 0.99

    def __post_init__(self) -> None:
        if not (0.0 < self.fraction <= 1.0):
            raise ValueError(f"EnergyRule: fraction must lie in (0, 1], got {self.fraction}.")

    def null_mask(self, eigenvalues: torch.Tensor) -> torch.Tensor:
        # eigenvalues are ascending: the protected (range) directions are the largest ones.
        descending = torch.flip(eigenvalues, dims=[0])
        total = descending.sum()
        if total <= 0:
            return torch.ones_like(eigenvalues, dtype=torch.bool)
        cumulative = torch.cumsum(descending, 0) / total
        # smallest k with cumulative[k-1] >= fraction (tolerate round-off at fraction = 1)
        kept = int(torch.searchsorted(cumulative, torch.tensor(self.fraction - 1e-12,
                                                               dtype=cumulative.dtype))) + 1
        kept = min(kept, eigenvalues.numel())
        mask = torch.ones_like(eigenvalues, dtype=torch.bool)
        mask[eigenvalues.numel() - kept:] = False
        return mask

    def threshold(self, eigenvalues: torch.Tensor) -> float:
        mask = self.null_mask(eigenvalues)
        return float(eigenvalues[mask].max()) if mask.any() else float("nan")

    def describe(self) -> str:
        return f"keep {self.fraction:.4g} of the energy (GPM)"


@dataclass
class NullSpace:
    """An eigen-decomposition of a covariance split into null and range directions.

    ``eigenvalues`` are ascending singular values of the covariance (``|eigh|``, which equals the
    SVD of Adam-NSCL Eq. 5 / AlphaEdit Eq. 8 for a symmetric PSD matrix); ``eigenvectors`` are the
    matching columns of ``U``; ``mask`` marks the columns of ``U2`` (Adam-NSCL) / ``Û`` (AlphaEdit).
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    mask: torch.Tensor
    rule: str

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the input space."""
        return int(self.eigenvalues.numel())

    @cached_property
    def null_dim(self) -> int:
        """Number of null directions (columns of ``U2``)."""
        return int(self.mask.sum())

    @cached_property
    def basis(self) -> torch.Tensor:
        """Orthonormal basis ``U2`` of the null space, shape ``(d, null_dim)``."""
        return self.eigenvectors[:, self.mask].contiguous()

    @cached_property
    def range_basis(self) -> torch.Tensor:
        """Orthonormal basis ``U1`` of the protected (range) directions, shape ``(d, d - null_dim)``."""
        return self.eigenvectors[:, ~self.mask].contiguous()

    def to(self, like: torch.Tensor) -> NullSpace:
        """A copy whose eigenvectors have ``like``'s dtype and device.

        An optimizer projects thousands of updates with one null space: converting once here
        leaves :meth:`project` with nothing but its two thin matrix products.
        """
        return NullSpace(self.eigenvalues, self.eigenvectors.to(dtype=like.dtype, device=like.device),
                         self.mask, self.rule)

    @property
    def discarded_mass(self) -> float:
        """Share of the eigenvalue mass lying in the null space (0 for an exact null space)."""
        total = float(self.eigenvalues.sum())
        return float(self.eigenvalues[self.mask].sum()) / total if total > 0 else 0.0

    def projector(self) -> torch.Tensor:
        """The dense projector ``P = U2 U2ᵀ`` (Adam-NSCL Eq. 6, AlphaEdit Eq. 9), float64."""
        u2 = self.basis
        return u2 @ u2.T

    def project(self, update: torch.Tensor) -> torch.Tensor:
        """Project ``update`` (shape ``(..., d)``) onto the null space along its last axis.

        Uses whichever low-rank form is cheaper: ``u U2 U2ᵀ`` when the null space is small,
        ``u − u U1 U1ᵀ`` when the protected space is small. Both equal ``u P``. The result has
        the dtype and device of ``update``.

        Raises:
            TypeError: ``update`` is not a tensor, or is an integer or complex tensor.
            ValueError: its last dimension is not ``d``.
        """
        update = require_real_tensor(update, "update", floating=True)
        if update.ndim == 0 or update.shape[-1] != self.dim:
            raise ValueError(
                f"the update's last dimension must be the input dimension {self.dim}, got shape "
                f"{tuple(update.shape)}. View conv weights as (out, C·k·k) first."
            )
        if self.null_dim <= self.dim - self.null_dim:
            u2 = self.basis.to(dtype=update.dtype, device=update.device)
            return (update @ u2) @ u2.T
        u1 = self.range_basis.to(dtype=update.dtype, device=update.device)
        return update - (update @ u1) @ u1.T

    def summary(self) -> dict[str, float | int | str]:
        """Diagnostics: sizes, extreme eigenvalues and the discarded eigenvalue mass."""
        return {
            "rule": self.rule,
            "dim": self.dim,
            "null_dim": self.null_dim,
            "lambda_min": float(self.eigenvalues.min()),
            "lambda_max": float(self.eigenvalues.max()),
            "discarded_mass": self.discarded_mass,
        }

    def __repr__(self) -> str:
        return (f"NullSpace(dim={self.dim}, null_dim={self.null_dim}, rule={self.rule!r}, "
                f"discarded_mass={self.discarded_mass:.3g})")


def _spectrum_description(eigenvalues: torch.Tensor) -> str:
    quantiles = torch.quantile(eigenvalues, torch.tensor([0.0, 0.5, 1.0], dtype=eigenvalues.dtype))
    lo, med, hi = (float(q) for q in quantiles)
    return f"{eigenvalues.numel()} eigenvalues, min {lo:.3g}, median {med:.3g}, max {hi:.3g}"


def require_psd_spectrum(eigenvalues: torch.Tensor | np.ndarray, name: str = "the covariance") -> None:
    """Raise ``ValueError`` naming ``name`` when the ascending ``eigenvalues`` of a symmetric matrix
    go below ``-PSD_TOLERANCE · ‖λ‖`` (round-off of a float32 covariance stays above it)."""
    values = torch.as_tensor(eigenvalues, dtype=torch.float64)
    scale = float(torch.linalg.vector_norm(values))
    if values.numel() and float(values[0]) < -PSD_TOLERANCE * scale:
        raise ValueError(
            f"{name} is not positive semi-definite: its smallest eigenvalue is {float(values[0]):.3g} "
            f"against a largest of {float(values[-1]):.3g}. An uncentered covariance XᵀX/n never has negative "
            "eigenvalues: pass XᵀX/n of the inputs (CovarianceAccumulator), not a difference of covariances "
            "or an arbitrary symmetric matrix.")


def null_space(
    covariance: ArrayLike,
    rule: SelectionRule,
    *,
    allow_empty: bool = False,
    allow_full: bool = False,
) -> NullSpace:
    """Decompose a covariance and select its approximate null space with ``rule``.

    Args:
        covariance: a symmetric ``(d, d)`` matrix such as ``XᵀX / n`` or ``K0 K0ᵀ``.
        rule: one of :class:`MinRatioRule`, :class:`AbsoluteRule`, :class:`RelativeRule`,
            :class:`EnergyRule` (or any object with ``null_mask`` and ``describe``).
        allow_empty: return an empty null space instead of raising. An empty null space means the
            layer cannot change at all; it is almost always a threshold mistake.
        allow_full: return a null space holding every direction (``P = I``) instead of raising,
            although the covariance is not zero. Such a projector protects nothing; it is almost
            always a threshold above ``λ_max``. (A zero covariance, with no input to protect,
            is always accepted.)

    Raises:
        TypeError: ``rule`` is not a selection rule.
        ValueError: the matrix is not square, symmetric, finite, real and positive semi-definite.
        EmptyNullSpaceError: the rule selects no direction (and ``allow_empty`` is False).
        FullNullSpaceError: the rule selects every direction of a non-zero covariance (and
            ``allow_full`` is False).
    """
    if not (callable(getattr(rule, "null_mask", None)) and callable(getattr(rule, "describe", None))):
        raise TypeError(f"rule must be a selection rule such as AbsoluteRule(2e-2) or RelativeRule(1e-3), got "
                        f"{type(rule).__name__} {rule!r}.")
    c = validate_covariance(covariance)
    eigenvalues, eigenvectors = torch.linalg.eigh(c)
    require_psd_spectrum(eigenvalues)
    # Singular values of a symmetric PSD matrix are |eigenvalues|; sort ascending again, since
    # round-off can make tiny eigenvalues negative.
    singular = eigenvalues.abs()
    order = torch.argsort(singular)
    singular, eigenvectors = singular[order], eigenvectors[:, order]
    mask = rule.null_mask(singular)
    if not bool(mask.any()) and not allow_empty:
        raise EmptyNullSpaceError(
            f"the rule '{rule.describe()}' selects no null direction ({_spectrum_description(singular)}). "
            "Every direction is protected, so no update is possible. Raise the threshold "
            "(a larger a or ratio, a smaller energy fraction) or pass allow_empty=True to freeze "
            "the layer on purpose."
        )
    if bool(mask.all()) and float(singular[-1]) > 0 and not allow_full:
        raise FullNullSpaceError(
            f"the rule '{rule.describe()}' counts every direction as null ({_spectrum_description(singular)}), so "
            "P = I and the update is not restricted at all: every protected input's output would change. "
            "Lower the threshold below the largest eigenvalue (a smaller absolute threshold, or a "
            "scale-free RelativeRule), or pass allow_full=True to protect nothing on purpose."
        )
    return NullSpace(eigenvalues=singular, eigenvectors=eigenvectors, mask=mask, rule=rule.describe())


def null_space_projector(covariance: ArrayLike, rule: SelectionRule) -> torch.Tensor:
    """The dense projector ``P = U2 U2ᵀ`` onto the approximate null space of ``covariance``
    (raises as :func:`null_space` does)."""
    return null_space(covariance, rule).projector()
