"""Checks for lesson 5, knowledge in GPT-2's MLPs. Each compares the learner's function with the
package's tested version on fresh inputs: random GPT-2 blocks and keys, and the shipped course
model for the causal trace (loaded once per session)."""

from __future__ import annotations

import functools

import torch

from nullspace.editing.geometry import effective_rank  # isort: skip  (quiets tqdm before transformers)
from transformers import GPT2Config
from transformers.models.gpt2.modeling_gpt2 import GPT2Block

from nullspace.capture import weight_as_matrix
from nullspace.course.verdict import exercise_check
from nullspace.editing.keys import subject_token_index
from nullspace.editing.memory import ffn_key_value, least_squares_update, rank_one_update
from nullspace.editing.models import load_model
from nullspace.editing.trace import embedding_noise_level, trace_fact
from nullspace.editing.world.facts import load_world

__all__ = ["exercise_5_1", "exercise_5_2", "exercise_5_3", "exercise_5_4", "exercise_5_5", "exercise_5_6"]


def _random_block(seed: int, activation: str = "gelu_new") -> GPT2Block:
    torch.manual_seed(seed)
    config = GPT2Config(n_embd=16, n_head=2, n_inner=40, activation_function=activation,
                        resid_pdrop=0.0, attn_pdrop=0.0, embd_pdrop=0.0)
    config._attn_implementation = "eager"
    block = GPT2Block(config).eval()
    with torch.no_grad():
        for param in block.parameters():
            param.normal_(0.0, 0.3)
    return block


@functools.lru_cache(maxsize=1)
def _course_model():
    return load_model("course-gpt2", device="cpu")


def _remove_hooks(model) -> list[str]:
    """Remove every forward hook from ``model`` (the check's own copy); return the modules that had one."""
    had = [name for name, module in model.named_modules() if module._forward_hooks or module._forward_pre_hooks]
    for module in model.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    return had


@exercise_check("5.1", "a GPT-2 block by hand")
def exercise_5_1(block_by_hand) -> str:
    for seed, activation in ((51, "gelu_new"), (52, "relu")):
        block = _random_block(seed, activation)
        hidden = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            output, key, value = block_by_hand(block, hidden)
            expected_output = block(hidden)
            middle = hidden + block.attn(block.ln_1(hidden))[0]
            expected_key, expected_value = ffn_key_value(block, middle)
        assert tuple(key.shape) == tuple(expected_key.shape), \
            f"the key should have shape {tuple(expected_key.shape)} (…, d_ff), got {tuple(key.shape)}."
        assert torch.allclose(key, expected_key, atol=1e-5), (
            "the key differs from σ(W_in γ(h + a)): the MLP reads the residual stream *after* the attention "
            "has been added, through block.ln_2.")
        assert torch.allclose(value, expected_value, atol=1e-5), \
            "the value differs: it is block.mlp.c_proj applied to the key (W_out k + bias)."
        assert torch.allclose(output, expected_output, atol=1e-5), \
            "the block's output differs from h + a + m (both residual additions, Eq. 1)."
    return "output, key and value match GPT2Block on a GELU and a ReLU block."


@exercise_check("5.3", "effective rank")
def exercise_5_3(effective_rank_of) -> str:
    g = torch.Generator().manual_seed(52)
    orthogonal = torch.linalg.qr(torch.randn(12, 7, generator=g, dtype=torch.float64))[0].T * 3.0
    got = float(effective_rank_of(orthogonal))
    assert abs(got - 7.0) < 1e-6, f"7 orthogonal rows of equal norm have effective rank 7, got {got:.4g}."
    low_rank = torch.randn(30, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 20, generator=g,
                                                                                   dtype=torch.float64)
    skewed = low_rank + 0.01 * torch.randn(30, 20, generator=g, dtype=torch.float64)
    with_zero_column = torch.cat([torch.randn(9, 4, generator=g, dtype=torch.float64),
                                  torch.zeros(9, 1, dtype=torch.float64)], dim=1)
    for rows in (low_rank, skewed, with_zero_column):
        expected = effective_rank(rows)
        got = float(effective_rank_of(rows))
        assert abs(got - expected) < 1e-6 * expected, \
            f"expected {expected:.4f}, got {got:.4f}: use p_i = σ_i / Σσ_j over the singular values " \
            "(not their squares), leave out the zero ones (0 · log 0 counts as 0) and return exp(−Σ p_i log p_i)."
    return f"a rank-3 matrix plus noise has effective rank {effective_rank(skewed):.2f}."


@exercise_check("5.2", "the causal trace of one state")
def exercise_5_2(trace_one_state) -> str:
    model, tokenizer = _course_model()
    _remove_hooks(model)  # what an earlier, failed attempt may have left on the check's model
    world = load_world()
    noise_level = embedding_noise_level(model, tokenizer, [p.name for p in world.people])
    person, relation = world.people[7], world.relation("job")
    prompt, answer = relation.templates[0], person.facts["job"]
    text = prompt.format(person.name)
    input_ids = torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])
    last_subject = subject_token_index(tokenizer, prompt, person.name)
    answer_id = tokenizer(" " + answer, add_special_tokens=False)["input_ids"][0]
    samples, seed = 6, 53
    noise = noise_level * torch.randn(samples, 1, model.config.n_embd, generator=torch.Generator().manual_seed(seed))
    cases = [("hidden", 0, last_subject), ("mlp", 0, last_subject), ("mlp", 1, last_subject),
             ("attn", 3, len(input_ids) - 1), ("hidden", 2, len(input_ids) - 1)]
    if last_subject > 0:
        cases.append(("hidden", 1, 0))
    references = {}
    for kind, layer, position in cases:
        if kind not in references:
            references[kind] = trace_fact(model, tokenizer, prompt, person.name, answer, kind=kind,
                                          noise=noise_level, samples=samples, seed=seed)
        reference = references[kind]
        try:
            with torch.no_grad():
                got = trace_one_state(model, input_ids.clone(), [last_subject], answer_id, noise.clone(), kind,
                                      layer, position)
        finally:
            left = _remove_hooks(model)
        assert not left, f"hooks are still registered on {left}: remove every hook you add, also when an error occurs."
        p_clean, p_corrupt, p_restored = (float(p) for p in got)
        assert abs(p_clean - reference.p_clean) < 1e-5, (
            f"p_clean = {p_clean:.4f}, expected {reference.p_clean:.4f}: the probability of the answer token "
            "after the *last* position of the clean run (softmax over the vocabulary).")
        assert abs(p_corrupt - reference.p_corrupt) < 1e-5, (
            f"p_corrupt = {p_corrupt:.4f}, expected {reference.p_corrupt:.4f}: add noise[i] to the token "
            "embeddings of the subject's positions in corrupted run i, and average over the runs.")
        expected = float(reference.restored[layer, position])
        assert abs(p_restored - expected) < 1e-5, (
            f"restoring the {kind} state of block {layer} at position {position}: got {p_restored:.4f}, expected "
            f"{expected:.4f}. Replace that one state (one position, every corrupted run) by its clean value.")
    strongest = float(references["mlp"].indirect_effect[0, last_subject])
    return (f"{len(cases)} restorations of '{text} … {answer}' match trace_fact; block 0's MLP at the subject "
            f"has indirect effect {strongest:.2f}.")


@exercise_check("5.4", "the rank-one edit")
def exercise_5_4(rank_one_edit) -> str:
    g = torch.Generator().manual_seed(54)
    weight = torch.randn(6, 10, generator=g, dtype=torch.float64)
    key, value = torch.randn(10, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    delta = rank_one_edit(weight.clone(), key.clone(), value.clone()).double()
    assert tuple(delta.shape) == (6, 10), f"Δ must have W's shape (6, 10), got {tuple(delta.shape)}."
    assert torch.allclose((weight + delta) @ key, value, atol=1e-8), "(W + Δ) k must equal the new value v."
    assert torch.allclose(delta, rank_one_update(weight, key, value), atol=1e-8), \
        "Δ writes v but is not the smallest such change: it must be a multiple of kᵀ in every row."
    return "the edit writes the new value with the smallest possible change."


@exercise_check("5.5", "least-squares edit (AlphaEdit Eq. 6)")
def exercise_5_5(least_squares_edit) -> str:
    g = torch.Generator().manual_seed(55)
    weight = torch.randn(5, 12, generator=g, dtype=torch.float64)
    new_keys = torch.randn(2, 12, generator=g, dtype=torch.float64)
    new_values = torch.randn(2, 5, generator=g, dtype=torch.float64)
    full_rank = torch.randn(14, 12, generator=g, dtype=torch.float64)
    deficient = torch.randn(6, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 12, generator=g, dtype=torch.float64)
    for preserved, ridge in ((full_rank, 0.0), (deficient, 0.5)):
        delta = least_squares_edit(weight.clone(), preserved.clone(), new_keys.clone(), new_values.clone(), ridge)
        expected = least_squares_update(weight, preserved, new_keys, new_values, ridge=ridge)
        assert tuple(delta.shape) == (5, 12), f"Δ must have W's shape (5, 12), got {tuple(delta.shape)}."
        assert torch.allclose(delta.double(), expected, atol=1e-6), (
            f"with ridge ε = {ridge}, Δ differs from (V1 − W K1) K1ᵀ (K0 K0ᵀ + K1 K1ᵀ + εI)⁻¹; remember the "
            "keys are rows here, so the paper's K is keys.T.")
    untouched = (expected @ full_rank.T).norm() / (weight @ full_rank.T).norm()
    return f"with 14 preserved keys filling all 12 dimensions their outputs moved by {100 * float(untouched):.2g}%."


@exercise_check("5.6", "write an edit into the model")
def exercise_5_6(edit_fact) -> str:
    block = _random_block(56)
    module = block.mlp.c_proj                                            # Conv1D: weight (d_ff, d_model)
    g = torch.Generator().manual_seed(56)
    key = torch.relu(torch.randn(40, generator=g))
    change = torch.randn(16, generator=g)
    preserved = torch.relu(torch.randn(25, 40, generator=g))
    weight_before = weight_as_matrix(module).detach().double().clone()
    with torch.no_grad():
        value_before = module(key[None])[0]
        delta = edit_fact(module, key.clone(), change.clone(), preserved.clone(), 1.0)
    assert tuple(delta.shape) == (16, 40), f"return Δ in the paper's shape (d_model, d_ff) = (16, 40), got {tuple(delta.shape)}."
    expected = least_squares_update(weight_before, preserved.double(), key[None].double(),
                                    (weight_before @ key.double() + change.double())[None], ridge=1.0)
    assert torch.allclose(delta.double(), expected, atol=1e-5), (
        "Δ differs from the least-squares edit that asks for v1 = W k1 + δ (W is c_proj's weight *transposed*, "
        "(d_model, d_ff)), with the preserved keys and the ridge given.")
    written = weight_as_matrix(module).detach().double() - weight_before
    assert torch.allclose(written, expected, atol=1e-5), (
        "the module's weight did not change by Δ: c_proj stores Wᵀ, so add Δ.T to module.weight, in place.")
    with torch.no_grad():
        gained = module(key[None])[0] - value_before
    cosine = float(torch.nn.functional.cosine_similarity(gained, change, dim=0))
    return f"the FFN's value at k1 moved along δ (cosine {cosine:.2f}) and the weight changed by exactly Δᵀ."
