"""Checks for lesson 1: the null space from first principles.

Each check compares the learner's function with the package's tested version on fresh inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from nullspace.course.verdict import exercise_check
from nullspace.linalg import AbsoluteRule, CovarianceAccumulator, EnergyRule, RelativeRule, null_space


def _low_rank(n: int, d: int, rank: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, d, generator=g, dtype=torch.float64)


@exercise_check("1.1", "right null space by SVD")
def exercise_1_1(right_null_space: Callable[[torch.Tensor], torch.Tensor]) -> str:
    for n, d, rank, scale in [(20, 6, 3, 1.0), (5, 8, 5, 1.0), (30, 4, 4, 1.0), (12, 7, 2, 1e-12), (9, 6, 2, 1e8)]:
        x = scale * _low_rank(n, d, rank, seed=n + d)
        basis = right_null_space(x)
        assert isinstance(basis, torch.Tensor), "return a torch.Tensor"
        assert basis.shape == (d, d - rank), (
            f"for X of shape {(n, d)} and rank {rank} (entries of size {scale:g}) the basis should have "
            f"shape {(d, d - rank)}, got {tuple(basis.shape)} (columns are basis vectors; is your cut "
            "relative to the largest singular value?).")
        eye = torch.eye(d - rank, dtype=basis.dtype)
        assert torch.allclose(basis.T @ basis, eye, atol=1e-8), "the columns are not orthonormal."
        assert torch.linalg.norm(x @ basis) <= 1e-8 * torch.linalg.norm(x), "X times the basis is not 0."
    return "Shapes, orthonormality and X·B = 0 hold on five matrices, tiny and huge entries included."


@exercise_check("1.2", "streaming uncentered covariance")
def exercise_1_2(streaming_covariance: Callable[[Iterable[torch.Tensor]], torch.Tensor]) -> str:
    x = _low_rank(103, 7, 4, seed=1).float()
    batches = list(x.split([10, 50, 1, 42]))
    reference = CovarianceAccumulator(7)
    for batch in batches:
        reference.update(batch)
    result = streaming_covariance(iter(batches))
    assert result.shape == (7, 7), f"expected a (7, 7) matrix, got {tuple(result.shape)}."
    assert result.dtype == torch.float64, f"accumulate in float64, got {result.dtype}."
    assert torch.allclose(result, reference.covariance, rtol=1e-10, atol=1e-12), (
        "the result differs from XᵀX / n (did you divide by the number of rows, over all batches?)")
    return "Matches XᵀX / n over uneven batches, in float64."


@exercise_check("1.3", "projector from a covariance")
def exercise_1_3(projector_from_covariance: Callable[[torch.Tensor, float], torch.Tensor]) -> str:
    x = _low_rank(40, 9, 4, seed=3)
    cov = x.T @ x / 40
    for threshold in (1e-9, 0.5):
        p = projector_from_covariance(cov, threshold)
        expected = null_space(cov, AbsoluteRule(threshold)).projector()
        assert p.shape == (9, 9), f"expected a (9, 9) projector, got {tuple(p.shape)}."
        assert torch.allclose(p, p.T, atol=1e-10), "P is not symmetric."
        assert torch.allclose(p @ p, p, atol=1e-10), "P is not idempotent (P·P ≠ P)."
        assert torch.allclose(p, expected, atol=1e-8), (
            f"P differs from U2·U2ᵀ with λ < {threshold} (are you keeping the small eigenvalues?)")
    return "Symmetric, idempotent, equal to U2·U2ᵀ for two thresholds."


@exercise_check("1.4", "protect a layer's outputs")
def exercise_1_4(protect_update: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]) -> str:
    g = torch.Generator().manual_seed(5)
    delta = torch.randn(3, 10, generator=g, dtype=torch.float64)
    w = torch.randn(3, 10, generator=g, dtype=torch.float64)
    for scale in (1.0, 1e4):
        x_old = scale * _low_rank(50, 10, 6, seed=4)
        projected = protect_update(x_old, delta, 1e-10)
        assert projected.shape == delta.shape, f"keep the update's shape {tuple(delta.shape)}."
        before = x_old @ w.T
        change = torch.linalg.norm(x_old @ (w + projected).T - before) / torch.linalg.norm(before)
        assert change <= 1e-8, (f"old outputs still move (relative change {change:.2e}) for inputs of size "
                                f"{scale:g}: is your cut relative to the largest eigenvalue?")
        expected = null_space(x_old.T @ x_old / 50, RelativeRule(1e-10)).project(delta)
        assert torch.allclose(projected, expected, atol=1e-8), (
            "outputs are protected but the update is not the orthogonal projection of delta "
            "(it should be the closest protected update to delta).")
    return "Old outputs move by less than 1e-8 (relative), for small and large inputs."


@exercise_check("1.5", "the energy rule")
def exercise_1_5(energy_null_dim: Callable[[torch.Tensor, float], int]) -> str:
    g = torch.Generator().manual_seed(6)
    cases = [(torch.tensor([1e-9, 2e-9, 1e-4, 5e-3, 0.03, 0.5, 2.0, 7.46], dtype=torch.float64), f)
             for f in (0.9, 0.99, 0.999, 1.0)]
    cases += [(torch.rand(30, generator=g, dtype=torch.float64).pow(6).sort().values, 0.95)]
    for eigenvalues, fraction in cases:
        got = int(energy_null_dim(eigenvalues, fraction))
        expected = int(EnergyRule(fraction).null_mask(eigenvalues).sum())
        assert got == expected, (
            f"for fraction {fraction} expected {expected} null directions, got {got} "
            "(keep the fewest largest eigenvalues whose sum reaches the fraction of the total).")
    return "Agrees with the package's EnergyRule on five spectra."
