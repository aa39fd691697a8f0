"""Checks of lesson 7 (AlphaEdit: null-space projection, Eq. 8–14)."""

from __future__ import annotations

import torch

from nullspace.course.verdict import exercise_check
from nullspace.editing.methods.alphaedit import alphaedit_update
from nullspace.editing.preserved import knowledge_covariance
from nullspace.linalg import AbsoluteRule, null_space

__all__ = ["exercise_7_1", "exercise_7_2", "exercise_7_3", "exercise_7_4", "exercise_7_5"]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / max(float(torch.linalg.norm(b)), 1e-300))


def _low_rank_covariance(dim: int, rank: int, generator: torch.Generator) -> torch.Tensor:
    k0 = torch.randn(200, rank, generator=generator, dtype=torch.float64) @ torch.randn(
        rank, dim, generator=generator, dtype=torch.float64)
    return k0.T @ k0 / 200


@exercise_check("7.1", "the null-space projector, Eq. 8–9")
def exercise_7_1(projector_from_covariance) -> str:
    g = torch.Generator().manual_seed(71)
    c = _low_rank_covariance(16, 6, g) + 1e-3 * torch.eye(16, dtype=torch.float64)
    for threshold in (2e-2, 1e-4):
        mine = torch.as_tensor(projector_from_covariance(c, threshold), dtype=torch.float64)
        expected = null_space(c, AbsoluteRule(threshold), allow_empty=True).projector()
        assert mine.shape == (16, 16), f"P must be (16, 16), got {tuple(mine.shape)}."
        error = _relative(mine, expected) if expected.abs().sum() > 0 else float(mine.abs().max())
        assert error < 1e-8, (f"with threshold {threshold:g}: P differs from Û Ûᵀ (error {error:.2e}); Û holds "
                              "the eigenvectors whose eigenvalues are below the threshold.")
    return "P = Û Ûᵀ for a threshold that keeps 10 directions and one that keeps none."


@exercise_check("7.2", "AlphaEdit's update, Eq. 14 in the solve form")
def exercise_7_2(alphaedit_delta) -> str:
    g = torch.Generator().manual_seed(72)
    p = null_space(_low_rank_covariance(12, 5, g), AbsoluteRule(1e-8)).projector()
    keys, residuals = torch.randn(3, 12, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g,
                                                                                          dtype=torch.float64)
    kp = torch.randn(4, 12, generator=g, dtype=torch.float64)
    for l2, cache in ((1.0, None), (10.0, kp.T @ kp)):
        mine = torch.as_tensor(alphaedit_delta(keys, residuals, p, l2, cache), dtype=torch.float64)
        expected = alphaedit_update(keys, residuals, p, l2_weight=l2, edited_covariance=cache)
        assert mine.shape == expected.shape, f"Δ must have shape {tuple(expected.shape)}, got {tuple(mine.shape)}."
        error = _relative(mine, expected)
        assert error < 1e-6, f"relative error {error:.2e} against Eq. 14 with L2 = {l2:g}."
    return "matches Eq. 14 (L2 = 1) and the official form (L2 = 10, with a cache)."


@exercise_check("7.3", "how much of W K0 an update changes")
def exercise_7_3(preserved_change) -> str:
    g = torch.Generator().manual_seed(73)
    w, delta = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)
    k0 = torch.randn(9, 6, generator=g, dtype=torch.float64)
    expected = float(torch.linalg.norm(k0 @ delta.T) / torch.linalg.norm(k0 @ w.T))
    mine = float(preserved_change(w, delta, k0))
    assert abs(mine - expected) < 1e-9 * expected, (
        f"got {mine:.6f}, expected {expected:.6f}: ‖Δ K0‖_F / ‖W K0‖_F with the keys K0 stored as rows.")
    return f"{mine:.4f} on the example."


@exercise_check("7.4", "the cache of edited keys Kp Kpᵀ")
def exercise_7_4(add_edited_keys) -> str:
    g = torch.Generator().manual_seed(74)
    first, second = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(2, 5, generator=g,
                                                                                      dtype=torch.float64)
    cache = add_edited_keys(torch.zeros(5, 5, dtype=torch.float64), first)
    cache = add_edited_keys(cache, second)
    expected = first.T @ first + second.T @ second
    assert torch.as_tensor(cache).shape == (5, 5), "the cache is (d_in, d_in)."
    assert _relative(torch.as_tensor(cache, dtype=torch.float64), expected) < 1e-10, (
        "after two batches the cache must be K1ᵀK1 + K2ᵀK2 (keys as rows), summed, not averaged.")
    return "two batches accumulate into Kp Kpᵀ."


@exercise_check("7.5", "C0 with the preserved facts' keys added")
def exercise_7_5(covariance_with_facts) -> str:
    g = torch.Generator().manual_seed(75)
    corpus = _low_rank_covariance(12, 5, g)
    keys = torch.randn(30, 12, generator=g, dtype=torch.float64)
    for alpha in (0.0, 0.5, 3.0):
        mine = torch.as_tensor(covariance_with_facts(corpus, keys, alpha), dtype=torch.float64)
        expected = knowledge_covariance(corpus, keys, alpha)
        assert mine.shape == (12, 12), f"C0(α) must be (12, 12), got {tuple(mine.shape)}."
        error = _relative(mine, expected)
        assert error < 1e-10, (f"with α = {alpha:g}: C0(α) differs from the corpus covariance plus "
                               f"α·K0ᵀK0/n (error {error:.2e}); divide by the number of facts, not the dimension.")
    return "C0(α) = E_tokens[kkᵀ] + α·K0ᵀK0/n for α = 0, 0.5 and 3."
