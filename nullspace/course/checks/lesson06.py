"""Checks of lesson 6 (locate-then-edit: ROME, MEMIT and the CounterFact metrics)."""

from __future__ import annotations

import math

import torch

from nullspace.course.verdict import exercise_check
from nullspace.editing.evaluation.counterfact import ngram_entropy
from nullspace.editing.methods.memit import memit_update
from nullspace.editing.methods.rome import rome_update

__all__ = ["exercise_6_1", "exercise_6_2", "exercise_6_3", "exercise_6_4"]


def _random_spd(dim: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(3 * dim, dim, generator=generator, dtype=torch.float64)
    return a.T @ a / (3 * dim)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


@exercise_check("6.1", "ROME's rank-one update")
def exercise_6_1(rome_rank_one) -> str:
    g = torch.Generator().manual_seed(61)
    c = _random_spd(12, g)
    key, residual = torch.randn(12, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    delta = torch.as_tensor(rome_rank_one(key, residual, c), dtype=torch.float64)
    assert delta.shape == (5, 12), f"Δ must have shape (d_out, d_in) = (5, 12), got {tuple(delta.shape)}."
    assert _relative(delta @ key, residual) < 1e-8, "(W + Δ) k* must equal v*: Δ k* should equal the residual."
    assert int(torch.linalg.matrix_rank(delta)) == 1, "Δ must have rank one."
    error = _relative(delta, rome_update(key, residual, c, ridge=0.0))
    assert error < 1e-8, f"Δ differs from r (C⁻¹k)ᵀ / (kᵀC⁻¹k) (relative error {error:.2e})."
    return "Δ k* = r and Δ has rank one."


@exercise_check("6.2", "MEMIT's batch update, Eq. 15")
def exercise_6_2(memit_delta) -> str:
    g = torch.Generator().manual_seed(62)
    keys, residuals = torch.randn(4, 10, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g,
                                                                                          dtype=torch.float64)
    c0, cp = _random_spd(10, g), _random_spd(10, g)
    for weight, cache in ((5.0, None), (0.5, cp)):
        mine = torch.as_tensor(memit_delta(keys, residuals, c0, weight, cache), dtype=torch.float64)
        expected = memit_update(keys, residuals, c0, covariance_weight=weight, edited_covariance=cache)
        assert mine.shape == expected.shape, f"Δ must have shape {tuple(expected.shape)}, got {tuple(mine.shape)}."
        error = _relative(mine, expected)
        assert error < 1e-6, (f"relative error {error:.2e} against Eq. 15 with λ = {weight} and "
                              f"{'a' if cache is not None else 'no'} cache of earlier keys.")
    return "matches Eq. 15 with and without the cache Kp Kpᵀ."


@exercise_check("6.3", "efficacy from the two objects' NLLs")
def exercise_6_3(efficacy_score) -> str:
    nll_new = [torch.tensor([0.5]), torch.tensor([2.0, 0.1, 3.0])]
    nll_true = [torch.tensor([1.0]), torch.tensor([1.0, 1.0, 1.0])]
    score = float(efficacy_score(nll_new, nll_true))
    expected = 100 * (1.0 + 1 / 3) / 2
    assert math.isclose(score, expected, rel_tol=1e-6), (
        f"got {score:.3f}, expected {expected:.3f}: average the share of prompts where the new object is "
        "more likely (lower NLL) per request first, then over requests, and report ×100.")
    return f"{score:.2f} for the worked example."


@exercise_check("6.4", "n-gram entropy (fluency)")
def exercise_6_4(my_ngram_entropy) -> str:
    cases = [(list("abab"), 2), (["the", "cat", "sat", "on", "the", "mat", "and", "the", "cat", "ran"], 2),
             (["the", "cat", "sat", "on", "the", "mat", "and", "the", "cat", "ran"], 3), (["a"], 2)]
    for tokens, n in cases:
        mine, expected = float(my_ngram_entropy(tokens, n)), ngram_entropy(tokens, n)
        assert math.isclose(mine, expected, rel_tol=1e-9, abs_tol=1e-12), (
            f"for n = {n} on {tokens}: got {mine:.4f}, expected {expected:.4f} bits "
            "(entropy in log base 2 of the n-gram frequencies; 0 when there is no n-gram).")
    return "matches on four cases, including a text shorter than n."
