"""Checks for lesson 5, knowledge in GPT-2's MLPs. Each compares the learner's function with the
package's tested version on fresh inputs (a small random GPT-2 block, random keys)."""

from __future__ import annotations

import torch

from nullspace.editing.geometry import effective_rank  # isort: skip  (quiets tqdm before transformers)
from transformers import GPT2Config
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

from nullspace.course.verdict import exercise_check
from nullspace.editing.memory import ffn_key_value, least_squares_update, rank_one_update

__all__ = ["exercise_5_1", "exercise_5_2", "exercise_5_3", "exercise_5_4"]


def _random_block(seed: int) -> GPT2Block:
    torch.manual_seed(seed)
    config = GPT2Config(n_embd=16, n_head=2, n_inner=40, activation_function="relu")
    block = GPT2Block(config).eval()
    with torch.no_grad():
        for param in block.parameters():
            param.normal_(0.0, 0.3)
    return block


@exercise_check("5.1", "an FFN's key and value")
def exercise_5_1(ffn_key_and_value) -> str:
    block = _random_block(51)
    hidden = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(51))
    with torch.no_grad():
        key, value = ffn_key_and_value(block, hidden)
        expected_key, expected_value = ffn_key_value(block, hidden)
    assert tuple(key.shape) == tuple(expected_key.shape), \
        f"the key should have shape {tuple(expected_key.shape)} (…, d_ff), got {tuple(key.shape)}."
    assert not torch.allclose(key, block.mlp.act(block.mlp.c_fc(hidden)), atol=1e-6), \
        "the key misses the layer norm γ: apply block.ln_2 before c_fc (AlphaEdit Eq. 1)."
    assert torch.allclose(key, expected_key, atol=1e-5), \
        "the key differs: it is σ(W_in γ(h)) = block.mlp.act(block.mlp.c_fc(block.ln_2(h)))."
    assert torch.allclose(value, expected_value, atol=1e-5), \
        "the value differs: it is the output of block.mlp.c_proj applied to the key (W k + b)."
    with torch.no_grad():
        module_output = block.mlp(block.ln_2(hidden))
    assert torch.allclose(value, module_output, atol=1e-5)
    return "your value equals the FFN's own output."


@exercise_check("5.2", "effective rank")
def exercise_5_2(effective_rank_of) -> str:
    g = torch.Generator().manual_seed(52)
    orthogonal = torch.linalg.qr(torch.randn(12, 7, generator=g, dtype=torch.float64))[0].T * 3.0
    got = float(effective_rank_of(orthogonal))
    assert abs(got - 7.0) < 1e-6, f"7 orthogonal rows of equal norm have effective rank 7, got {got:.4g}."
    low_rank = torch.randn(30, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 20, generator=g,
                                                                                   dtype=torch.float64)
    skewed = low_rank + 0.01 * torch.randn(30, 20, generator=g, dtype=torch.float64)
    for rows in (low_rank, skewed):
        expected = effective_rank(rows)
        got = float(effective_rank_of(rows))
        assert abs(got - expected) < 1e-6 * expected, \
            f"expected {expected:.4f}, got {got:.4f}: use p_i = σ_i / Σσ_j over the singular values " \
            "(not their squares) and return exp(−Σ p_i log p_i)."
    return f"a rank-3 matrix plus noise has effective rank {effective_rank(skewed):.2f}."


@exercise_check("5.3", "the rank-one edit")
def exercise_5_3(rank_one_edit) -> str:
    g = torch.Generator().manual_seed(53)
    weight = torch.randn(6, 10, generator=g, dtype=torch.float64)
    key, value = torch.randn(10, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    delta = rank_one_edit(weight, key, value).double()
    assert tuple(delta.shape) == (6, 10), f"Δ must have W's shape (6, 10), got {tuple(delta.shape)}."
    assert torch.allclose((weight + delta) @ key, value, atol=1e-8), "(W + Δ) k must equal the new value v."
    assert torch.allclose(delta, rank_one_update(weight, key, value), atol=1e-8), \
        "Δ writes v but is not the smallest such change: use Δ = (v − W k) kᵀ / (kᵀ k)."
    return "the edit writes the new value with the smallest possible change."


@exercise_check("5.4", "least-squares edit (AlphaEdit Eq. 6)")
def exercise_5_4(least_squares_edit) -> str:
    g = torch.Generator().manual_seed(54)
    weight = torch.randn(5, 12, generator=g, dtype=torch.float64)
    preserved = torch.randn(14, 12, generator=g, dtype=torch.float64)
    new_key = torch.randn(1, 12, generator=g, dtype=torch.float64)
    new_value = torch.randn(1, 5, generator=g, dtype=torch.float64)
    delta = least_squares_edit(weight, preserved, new_key, new_value).double()
    expected = least_squares_update(weight, preserved, new_key, new_value, ridge=0.0)
    assert tuple(delta.shape) == (5, 12), f"Δ must have W's shape (5, 12), got {tuple(delta.shape)}."
    assert torch.allclose(delta, expected, atol=1e-6), \
        "Δ differs from (V1 − W K1) K1ᵀ (K0 K0ᵀ + K1 K1ᵀ)⁻¹; remember the keys are rows here, so the " \
        "paper's K is keys.T."
    untouched = (delta @ preserved.T).norm() / (weight @ preserved.T).norm()
    return f"the 14 preserved outputs moved by {100 * float(untouched):.2g}% (their keys fill all 12 dimensions)."
