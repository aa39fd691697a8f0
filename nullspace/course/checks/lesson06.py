"""Checks of lesson 6 (locate-then-edit: MEMIT's update, the target vector, the spread over layers,
the CounterFact metrics). Each compares the learner's code with the package's tested version on
fresh inputs; the target vector and the spread run on copies of the shipped course model."""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import replace

import torch

from nullspace.course.verdict import exercise_check
from nullspace.editing.evaluation.counterfact import ngram_entropy
from nullspace.editing.hparams import hparams_for
from nullspace.editing.keys import compute_ks, ffn_output_layer, subject_token_index
from nullspace.editing.methods.memit import memit_update
from nullspace.editing.methods.sequential import subject_outputs
from nullspace.editing.models import load_model
from nullspace.editing.requests import requests_from_counterfact
from nullspace.editing.spread import spread_over_layers
from nullspace.editing.targets import adding_to_hidden_state, compute_z
from nullspace.editing.world.facts import load_counterfact, load_world

__all__ = ["exercise_6_1", "exercise_6_2", "exercise_6_3", "exercise_6_4", "exercise_6_5"]

MODEL = "course-gpt2"


def _random_spd(dim: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(3 * dim, dim, generator=generator, dtype=torch.float64)
    return a.T @ a / (3 * dim)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


@functools.lru_cache(maxsize=1)
def _course_model():
    return load_model(MODEL, device="cpu")


def _fresh_model():
    model, tokenizer = _course_model()
    return copy.deepcopy(model), tokenizer


@exercise_check("6.1", "MEMIT's batch update, Eq. 15")
def exercise_6_1(memit_delta) -> str:
    g = torch.Generator().manual_seed(61)
    keys, residuals = torch.randn(4, 10, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g,
                                                                                          dtype=torch.float64)
    c0, cp = _random_spd(10, g), _random_spd(10, g)
    for weight, cache in ((5.0, None), (0.5, cp)):
        mine = torch.as_tensor(memit_delta(keys.clone(), residuals.clone(), c0.clone(), weight,
                                           None if cache is None else cache.clone()), dtype=torch.float64)
        expected = memit_update(keys, residuals, c0, covariance_weight=weight, edited_covariance=cache)
        assert mine.shape == expected.shape, f"Δ must have shape {tuple(expected.shape)}, got {tuple(mine.shape)}."
        error = _relative(mine, expected)
        assert error < 1e-6, (f"relative error {error:.2e} against Eq. 15 with λ = {weight} and "
                              f"{'a' if cache is not None else 'no'} cache of earlier keys.")
    return "matches Eq. 15 with and without the cache Kp Kpᵀ."


def _new_object_nll(model, tokenizer, request: dict, layer: int, delta: torch.Tensor, contexts) -> float:
    """Mean NLL of the new object's first token over the contexts with δ added at the subject."""
    answer = tokenizer(" " + request["target_new"]["str"], add_special_tokens=False)["input_ids"][0]
    total = 0.0
    for context in contexts:
        prompt = context.replace("{}", request["prompt"], 1)
        ids = torch.tensor([tokenizer(prompt.format(request["subject"]), add_special_tokens=False)["input_ids"]])
        with torch.no_grad(), adding_to_hidden_state(model, layer, [subject_token_index(tokenizer, prompt,
                                                                                          request["subject"])], delta):
            total -= float(torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)[answer])
    return total / len(contexts)


@exercise_check("6.2", "the target vector z (compute_z)")
def exercise_6_2(target_delta) -> str:
    model, tokenizer = _fresh_model()
    world = load_world()
    contexts = world.context_templates()
    base = hparams_for(MODEL)
    record = load_counterfact()[5]["requested_rewrite"]
    settings = {
        "the course's settings": base,
        "a tight clamp (0.2)": replace(base, clamp_norm_factor=0.2, v_num_grad_steps=8),
        "a strong KL term (weight 3)": replace(base, kl_factor=3.0, v_num_grad_steps=10),
        "a strong weight decay (weight 300)": replace(base, v_weight_decay=300.0, v_num_grad_steps=10),
        "an early stop at loss 3": replace(base, early_stop_loss=3.0),
        "three evaluations (two Adam steps)": replace(base, v_num_grad_steps=3),
    }
    flags = [p.requires_grad for p in model.parameters()]
    for name, hparams in settings.items():
        expected = compute_z(model, tokenizer, record, hparams, contexts)
        delta = target_delta(model, tokenizer, copy.deepcopy(record), hparams, list(contexts))
        assert isinstance(delta, torch.Tensor) and tuple(delta.shape) == tuple(expected.delta.shape), (
            f"return δ as a tensor of shape {tuple(expected.delta.shape)} (d_model,).")
        assert not delta.requires_grad, "return δ detached from the autograd graph."
        assert [p.requires_grad for p in model.parameters()] == flags and all(p.grad is None for p in model.parameters()), (
            "the model's parameters were changed: switch their requires_grad off during the optimisation and "
            "restore it afterwards, so that no gradient lands in the model.")
        limit = hparams.clamp_norm_factor * float(expected.hidden.norm())
        assert float(delta.norm()) <= limit * (1 + 1e-4), (
            f"with {name}: ‖δ‖ = {float(delta.norm()):.3f} exceeds the clamp {hparams.clamp_norm_factor}·‖h‖ = "
            f"{limit:.3f}: rescale δ after every Adam step.")
        error = _relative(delta.double(), expected.delta.double())
        assert error < 1e-3, (
            f"with {name}: δ differs from compute_z's by {100 * error:.2g}% (‖δ‖ = {float(delta.norm()):.3f}, "
            f"expected {float(expected.delta.norm()):.3f}). Check the three terms of the loss, the clamp after each "
            "step, the early stop, and that the last loss evaluation takes no step.")
    nll = _new_object_nll(model, tokenizer, record, base.target_layer, delta, contexts)
    said = "below 0.1" if nll < 0.1 else f"of {nll:.1f}"
    return (f"δ matches compute_z under six settings; with it the course model gives the new object "
            f"'{record['target_new']['str']}' an NLL {said} (first token, mean over the contexts).")


def _requests(count: int):
    return requests_from_counterfact(load_counterfact(), limit=count)


@exercise_check("6.3", "MEMIT's residual spread over layers")
def exercise_6_3(memit_edit) -> str:
    layers = list(hparams_for(MODEL).layers)
    contexts = load_world().context_templates(3)
    requests = _requests(4)
    mine, tokenizer = _fresh_model()
    reference, _ = _fresh_model()
    g = torch.Generator().manual_seed(63)
    people = [p.name for p in load_world().people[:80]]
    covariances = {}
    for layer in layers:
        keys = compute_ks(reference, tokenizer, layer, ["{} lives in"] * len(people), people).double()
        covariances[layer] = keys.T @ keys / len(keys) + 1e-3 * torch.eye(keys.shape[1], dtype=torch.float64)
    start = subject_outputs(reference, tokenizer, layers[-1], requests).double()
    targets = start + 0.5 * start.norm(dim=1, keepdim=True) * torch.randn(start.shape, generator=g,
                                                                          dtype=torch.float64) / start.shape[1] ** 0.5
    weight = 2.0
    applied = spread_over_layers(
        reference, layers, targets,
        keys_at=lambda layer: compute_ks(reference, tokenizer, layer, [r.prompt for r in requests],
                                         [r.subject for r in requests], contexts),
        outputs_now=lambda: subject_outputs(reference, tokenizer, layers[-1], requests),
        solve=lambda layer, keys, residuals: memit_update(keys, residuals, covariances[layer],
                                                          covariance_weight=weight))
    returned = memit_edit(mine, tokenizer, list(requests), targets.clone(), list(layers),
                          {k: v.clone() for k, v in covariances.items()}, weight, list(contexts))
    assert set(returned) == set(layers), f"return a Δ for each edited layer {layers}, got keys {sorted(returned)}."
    for layer in layers:
        expected = applied[layer]
        got = returned[layer]
        assert tuple(got.shape) == tuple(expected.shape), (
            f"Δ of layer {layer} must have the paper's shape (d_model, d_ff) = {tuple(expected.shape)}, got "
            f"{tuple(got.shape)}.")
        error = _relative(got.double(), expected.double())
        assert error < 1e-4, (
            f"Δ of layer {layer} differs from MEMIT's by {100 * error:.2g}%: at the i-th of L layers read the keys "
            "and h_L from the model as edited so far, and solve for the share (z − h_L) / (L − i).")
        written = ffn_output_layer(mine, layer).weight.detach().double() - ffn_output_layer(reference, layer).weight.detach().double()
        assert float(written.abs().max()) < 1e-4, (
            f"the weight of layer {layer} is not the one MEMIT leaves: add Δᵀ to c_proj's weight (it stores Wᵀ) "
            "before moving to the next layer.")
    gap = _relative(subject_outputs(mine, tokenizer, layers[-1], requests).double(), targets)
    return (f"both layers' Δ match spread_over_layers on 4 requests (after the edit, ‖z − h_L‖ / ‖z‖ = "
            f"{gap:.2f}: λ C0 holds part of the change back).")


@exercise_check("6.4", "efficacy from the two objects' NLLs")
def exercise_6_4(efficacy_score) -> str:
    nll_new = [torch.tensor([0.5]), torch.tensor([2.0, 0.1, 3.0])]
    nll_true = [torch.tensor([1.0]), torch.tensor([1.0, 1.0, 1.0])]
    score = float(efficacy_score([t.clone() for t in nll_new], [t.clone() for t in nll_true]))
    expected = 100 * (1.0 + 1 / 3) / 2
    assert math.isclose(score, expected, rel_tol=1e-6), (
        f"got {score:.3f}, expected {expected:.3f}: average the share of prompts where the new object is "
        "more likely (lower NLL) per request first, then over requests, and report ×100.")
    ties = float(efficacy_score([torch.tensor([1.0, 0.2])], [torch.tensor([1.0, 0.1])]))
    assert math.isclose(ties, 0.0, abs_tol=1e-9), (
        f"a tie (equal NLLs) and a loss must score 0, got {ties:.1f}: the new object must be strictly more likely.")
    return f"{score:.2f} for the worked example, ties count as failures."


@exercise_check("6.5", "n-gram entropy (fluency)")
def exercise_6_5(my_ngram_entropy) -> str:
    cases = [(list("abab"), 2), (["the", "cat", "sat", "on", "the", "mat", "and", "the", "cat", "ran"], 2),
             (["the", "cat", "sat", "on", "the", "mat", "and", "the", "cat", "ran"], 3), (["a"], 2)]
    for tokens, n in cases:
        mine, expected = float(my_ngram_entropy(list(tokens), n)), ngram_entropy(tokens, n)
        assert math.isclose(mine, expected, rel_tol=1e-9, abs_tol=1e-12), (
            f"for n = {n} on {tokens}: got {mine:.4f}, expected {expected:.4f} bits "
            "(entropy in log base 2 of the n-gram frequencies; 0 when there is no n-gram).")
    return "matches on four cases, including a text shorter than n."
