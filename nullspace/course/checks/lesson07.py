"""Checks of lesson 7 (AlphaEdit: the update of Eq. 14, its push-through form, the sequential loop on
the course model, C0 with the preserved facts' keys). Each compares the learner's code with the
package's tested version (:mod:`nullspace.editing.methods.alphaedit`) on fresh inputs; the loop runs
on copies of the shipped course model."""

from __future__ import annotations

import copy
import functools
import math

import torch

from nullspace.course.verdict import exercise_check
from nullspace.editing.hparams import hparams_for
from nullspace.editing.keys import compute_ks, ffn_output_layer
from nullspace.editing.methods.alphaedit import AlphaEditEditor, alphaedit_update
from nullspace.editing.methods.sequential import subject_outputs
from nullspace.editing.models import load_model
from nullspace.editing.statistics import collect_key_statistics
from nullspace.editing.preserved import knowledge_covariance
from nullspace.editing.requests import requests_from_counterfact
from nullspace.editing.world.facts import load_counterfact, load_world
from nullspace.linalg import AbsoluteRule, null_space

__all__ = ["exercise_7_1", "exercise_7_2", "exercise_7_3", "exercise_7_4", "exercise_7_5", "exercise_7_6"]

MODEL = "course-gpt2"


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / max(float(torch.linalg.norm(b)), 1e-300))


def _low_rank_covariance(dim: int, rank: int, generator: torch.Generator) -> torch.Tensor:
    k0 = torch.randn(200, rank, generator=generator, dtype=torch.float64) @ torch.randn(
        rank, dim, generator=generator, dtype=torch.float64)
    return k0.T @ k0 / 200


def _keys(count: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(count, dim, generator=generator, dtype=torch.float64)


@exercise_check("7.1", "AlphaEdit's update, Eq. 14 in the solve form")
def exercise_7_1(alphaedit_delta) -> str:
    g = torch.Generator().manual_seed(71)
    p = null_space(_low_rank_covariance(12, 5, g), AbsoluteRule(1e-8)).projector()
    earlier = _keys(4, 12, g)
    cache = earlier.T @ earlier
    cases = [("one edit, L2 = 1, no earlier edits", _keys(1, 12, g), _keys(1, 4, g), 1.0, None),
             ("three edits, L2 = 10, four earlier edits", _keys(3, 12, g), _keys(3, 4, g), 10.0, cache)]
    for what, keys, residuals, l2, kp in cases:
        mine = alphaedit_delta(keys, residuals, p, l2, None if kp is None else p @ kp)
        mine = torch.as_tensor(mine, dtype=torch.float64)
        expected = alphaedit_update(keys, residuals, p, l2_weight=l2, edited_covariance=kp)
        assert mine.shape == expected.shape, f"{what}: Δ must have shape {tuple(expected.shape)}, got {tuple(mine.shape)}."
        error = _relative(mine, expected)
        assert error < 1e-6, (
            f"{what}: relative error {error:.2e} against Eq. 14. The system is P K1 K1ᵀ + P Kp Kpᵀ + L2·I (the cache "
            "arrives already projected), the right-hand side P K1 Rᵀ.")
        leak = float(torch.linalg.norm(mine @ (torch.eye(12, dtype=torch.float64) - p)))
        assert leak < 1e-8 * max(float(torch.linalg.norm(mine)), 1.0), f"{what}: Δ P ≠ Δ (‖Δ(I − P)‖ = {leak:.1e})."
    return "matches Eq. 14 with one edit and no cache (L2 = 1) and with a batch and a cache (L2 = 10); Δ P = Δ."


@exercise_check("7.2", "how much of W K0 an update changes")
def exercise_7_2(preserved_change) -> str:
    g = torch.Generator().manual_seed(73)
    w, delta = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)
    k0 = torch.randn(9, 6, generator=g, dtype=torch.float64)
    expected = float(torch.linalg.norm(k0 @ delta.T) / torch.linalg.norm(k0 @ w.T))
    mine = float(preserved_change(w, delta, k0))
    assert abs(mine - expected) < 1e-9 * expected, (
        f"got {mine:.6f}, expected {expected:.6f}: ‖Δ K0‖_F / ‖W K0‖_F with the keys K0 stored as rows.")
    return f"{mine:.4f} on the example."


@exercise_check("7.3", "Eq. 14 as an N × N solve (push-through)")
def exercise_7_3(alphaedit_push_through) -> str:
    g = torch.Generator().manual_seed(74)
    p = null_space(_low_rank_covariance(16, 6, g), AbsoluteRule(1e-8)).projector()
    cases = [("two edits and no earlier ones", _keys(2, 16, g), _keys(2, 5, g), 1.0, _keys(0, 16, g)),
             ("three edits after five", _keys(3, 16, g), _keys(3, 5, g), 10.0, _keys(5, 16, g)),
             ("one edit after 20 (N > d)", _keys(1, 16, g), _keys(1, 5, g), 2.0, _keys(20, 16, g))]
    for what, keys, residuals, l2, earlier in cases:
        mine = torch.as_tensor(alphaedit_push_through(keys, residuals, p, l2, earlier), dtype=torch.float64)
        expected = alphaedit_update(keys, residuals, p, l2_weight=l2,
                                    edited_covariance=earlier.T @ earlier if len(earlier) else None)
        assert mine.shape == expected.shape, f"{what}: Δ must have shape {tuple(expected.shape)}, got {tuple(mine.shape)}."
        error = _relative(mine, expected)
        assert error < 1e-8, (
            f"{what}: relative error {error:.2e} against the d × d solve of Eq. 14. Stack this batch's keys first, "
            "then the earlier ones; the N × N system is Kallᵀ P Kall + L2·I and the right-hand side is R padded with "
            "zero rows for the earlier keys.")
    return "equals the d × d solve with no earlier edits, after five, and with more keys than dimensions."


@functools.lru_cache(maxsize=1)
def _course_model():
    return load_model(MODEL, device="cpu")


@functools.lru_cache(maxsize=1)
def _preserved_covariances(layers: tuple[int, ...], edited: tuple[str, ...]) -> dict[int, torch.Tensor]:
    """A stand-in for C0: the keys of 80 people who are not edited, at "{} lives in", with a small ridge."""
    model, tokenizer = _course_model()
    people = [p.name for p in load_world().people if p.name not in edited][:80]
    covariances = {}
    for layer in layers:
        keys = compute_ks(model, tokenizer, layer, ["{} lives in"] * len(people), people).double()
        covariances[layer] = keys.T @ keys / len(keys) + 1e-3 * torch.eye(keys.shape[1], dtype=torch.float64)
    return covariances


def _quick_targets(model, tokenizer, requests, layer) -> torch.Tensor:
    """Cheap stand-ins for compute_z: each request's output at `layer` moved by a fixed random vector."""
    now = subject_outputs(model, tokenizer, layer, requests).double()
    shifts = torch.stack([torch.randn(now.shape[1], generator=torch.Generator().manual_seed(700 + r.case_id),
                                      dtype=torch.float64) for r in requests])
    return now + 0.5 * now.norm(dim=1, keepdim=True) * shifts / math.sqrt(now.shape[1])


def _ffn_weights(model, layers) -> dict[int, torch.Tensor]:
    """W (d_model, d_ff) of each layer (GPT-2's Conv1D stores Wᵀ)."""
    return {layer: ffn_output_layer(model, layer).weight.detach().T.double().clone() for layer in layers}


@exercise_check("7.4", "sequential AlphaEdit on the course model")
def exercise_7_4(editor_class) -> str:
    layers = tuple(hparams_for(MODEL).layers)
    requests = requests_from_counterfact(load_counterfact(), limit=6)
    covariances = _preserved_covariances(layers, tuple(r.subject for r in requests))
    rule, l2 = AbsoluteRule(1e-2), 2.0
    contexts = ("{}", "Orsen speaks Portuguese. {}")
    model, tokenizer = _course_model()
    mine, reference = copy.deepcopy(model), copy.deepcopy(model)
    batches = [requests[:3], requests[3:4], requests[4:]]     # uneven, one of a single request
    expected_editor = AlphaEditEditor(reference, tokenizer, layers, _quick_targets, l2_weight=l2,
                                      null_spaces={layer: null_space(covariances[layer], rule) for layer in layers},
                                      context_templates=contexts)
    editor = editor_class(mine, tokenizer, list(layers), {k: v.clone() for k, v in covariances.items()}, rule, l2,
                          _quick_targets, list(contexts))
    for number, batch in enumerate(batches, start=1):
        before = _ffn_weights(mine, layers)
        returned = editor.edit(list(batch))
        expected_editor.edit(list(batch))
        assert isinstance(returned, dict) and set(returned) == set(layers), (
            f"edit() must return {{layer: Δ}} for the layers {list(layers)}, got {type(returned).__name__}.")
        for layer, now in _ffn_weights(mine, layers).items():
            delta = torch.as_tensor(returned[layer]).double()
            assert tuple(delta.shape) == tuple(before[layer].shape), (
                f"batch {number}, block {layer}: Δ must have the paper's shape (d_model, d_ff) = "
                f"{tuple(before[layer].shape)}, got {tuple(delta.shape)}.")
            assert _relative(now - before[layer], delta) < 1e-4, (
                f"batch {number}, block {layer}: the weight did not change by the Δ you returned: add Δᵀ to c_proj's "
                "weight (it stores Wᵀ) before the next block reads its keys.")
            expected = _ffn_weights(reference, [layer])[layer]
            error = _relative(now - before[layer], expected - before[layer])
            assert error < 1e-4, (
                f"batch {number} ({len(batch)} request(s)), block {layer}: the edit differs from AlphaEditEditor's by "
                f"{100 * error:.2g}%. Build P once from C0; in each block read the keys and h_L from the model as "
                "edited so far and solve with P Kp Kpᵀ of the earlier batches; after the batch re-read every block's "
                "keys from the edited model and add P K Kᵀ to the cache.")
    return "three uneven batches (3, 1 and 2 requests) match AlphaEditEditor at both edited blocks of the course model."


@exercise_check("7.5", "the corpus statistic E[k kᵀ]", hand_copies=False)  # the check inspects the model it handed over
def exercise_7_5(corpus_key_covariances) -> str:
    layers = list(hparams_for(MODEL).layers)
    model, tokenizer = _course_model()
    world = load_world()
    texts = [world.general_text()[0], "Orsen", world.general_text()[1][:60], "Kelric owns a dog.",
             world.general_text()[2], "A."]                         # one text is far longer than max_length
    model = copy.deepcopy(model)
    model.train()                                                   # the learner must restore the mode
    got = corpus_key_covariances(model, tokenizer, list(layers), list(texts), 4, 24)
    assert model.training, "put the model back in the mode it was in (it was training)."
    assert not any(block.mlp.c_proj._forward_hooks for block in model.transformer.h), (
        "hooks are still registered on c_proj after the pass: remove them (in a finally: block).")
    expected = collect_key_statistics(model, tokenizer, layers, texts, batch_size=4, max_length=24)
    assert isinstance(got, dict) and set(got) == set(layers), f"return {{layer: C0}} for the layers {layers}."
    for layer in layers:
        reference = expected[layer].covariance
        mine = torch.as_tensor(got[layer]).to(torch.float64)
        assert tuple(mine.shape) == tuple(reference.shape), (
            f"block {layer}: C0 must be d_ff × d_ff = {tuple(reference.shape)} (the keys are the inputs of c_proj), "
            f"got {tuple(mine.shape)}.")
        error = _relative(mine, reference)
        assert error < 1e-5, (
            f"block {layer}: C0 differs from collect_key_statistics by {100 * error:.2g}% over "
            f"{expected[layer].token_count} tokens. Leave the padding out, cut every text to max_length tokens, and "
            "divide the sum over all batches by the number of real tokens once.")
    return (f"matches collect_key_statistics at blocks {layers} over six texts of uneven length in batches of 4 "
            f"({expected[layers[0]].token_count} tokens, padding left out).")


@exercise_check("7.6", "C0 with the preserved facts' keys added")
def exercise_7_6(covariance_with_facts) -> str:
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
