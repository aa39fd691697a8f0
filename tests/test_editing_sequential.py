"""Sequential editors on a tiny random GPT-2: the spread reaches the targets, the cache of edited
keys is explicit and reset, and reset restores the unedited weights exactly."""

import pytest
import torch
from editing_toy import toy_corpus, toy_model, toy_records, toy_tokenizer

from nullspace.editing.hparams import EditHyperParams
from nullspace.editing.methods.alphaedit import AlphaEditEditor
from nullspace.editing.methods.ft import FineTuneEditor
from nullspace.editing.methods.memit import MemitEditor
from nullspace.editing.methods.rome import RomeEditor
from nullspace.editing.methods.sequential import TargetOptimizer, request_keys, subject_outputs
from nullspace.editing.requests import requests_from_counterfact
from nullspace.editing.statistics import collect_key_statistics
from nullspace.linalg import RelativeRule, null_space

LAYERS = (0, 1)
HPARAMS = EditHyperParams(layers=LAYERS, v_num_grad_steps=5, v_lr=0.5, kl_factor=0.0625,
                          v_weight_decay=0.5, clamp_norm_factor=0.75)


@pytest.fixture(scope="module")
def setup():
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    requests = requests_from_counterfact(toy_records(6))
    stats = collect_key_statistics(model, tokenizer, list(LAYERS) + [2], toy_corpus())
    return model, tokenizer, requests, {layer: s.covariance for layer, s in stats.items()}


def fixed_targets(shift: float):
    """Targets = current output at the last layer plus a fixed random shift (no optimisation)."""
    def targets(model, tokenizer, requests, layer):
        g = torch.Generator().manual_seed(len(requests))
        now = subject_outputs(model, tokenizer, layer, requests)
        return now + shift * torch.randn(now.shape, generator=g)
    return targets


def test_memit_spread_reaches_the_targets_and_reset_restores(setup):
    model, tokenizer, requests, c0 = setup
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    targets = fixed_targets(0.5)
    z = targets(model, tokenizer, requests[:3], LAYERS[-1])
    editor = MemitEditor(model, tokenizer, LAYERS, targets, key_covariances=c0, covariance_weight=1e-6,
                         variant="eq15")
    editor.edit(requests[:3])
    reached = subject_outputs(model, tokenizer, LAYERS[-1], requests[:3])
    assert float(torch.linalg.norm(reached - z) / torch.linalg.norm(z)) < 1e-4
    assert set(editor.edited_covariance) == set(LAYERS)
    editor.reset()
    assert editor.edited_covariance == {} and editor.edits_done == 0
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


def test_edited_key_cache_holds_the_re_extracted_keys(setup):
    model, tokenizer, requests, c0 = setup
    editor = MemitEditor(model, tokenizer, LAYERS, fixed_targets(0.2), key_covariances=c0, covariance_weight=10.0,
                         variant="eq15")
    editor.edit(requests[:3])
    first = request_keys(model, tokenizer, 1, requests[:3], ("{}",)).double()
    editor.edit(requests[3:])
    second = request_keys(model, tokenizer, 1, requests[3:], ("{}",)).double()
    assert torch.allclose(editor.edited_covariance[1], first.T @ first + second.T @ second, rtol=1e-4, atol=1e-6)
    assert editor.edits_done == 6 and len(editor.batch_seconds) == 2
    editor.reset()


def test_alphaedit_with_exact_null_space_keeps_protected_keys(setup):
    model, tokenizer, requests, _ = setup
    # protect the keys of the last three requests at layer 1 exactly; edit the first three there
    protected = request_keys(model, tokenizer, 1, requests[3:], ("{}",)).double()
    values_before = model.transformer.h[1].mlp.c_proj(protected.float()).detach()
    spaces = {1: null_space(protected.T @ protected, RelativeRule(1e-9))}
    editor = AlphaEditEditor(model, tokenizer, (1,), fixed_targets(0.5), null_spaces=spaces, l2_weight=1e-3)
    editor.edit(requests[:3])
    values_after = model.transformer.h[1].mlp.c_proj(protected.float()).detach()
    assert float((values_after - values_before).norm() / values_before.norm()) < 1e-5
    assert max(editor.weight_change().values()) > 1e-3
    editor.reset()


def test_rome_and_ft_change_only_their_layer_and_reset(setup):
    model, tokenizer, requests, c0 = setup
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    rome = RomeEditor(model, tokenizer, 1, TargetOptimizer(HPARAMS), key_covariance=c0[1])
    rome.edit(requests[:2])
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {"transformer.h.1.mlp.c_proj.weight"}
    rome.reset()
    ft = FineTuneEditor(model, tokenizer, (2,), learning_rate=1e-2, steps=3, norm_constraint=1e-3)
    ft.edit(requests[:2])
    delta = model.transformer.h[2].mlp.c_proj.weight - before["transformer.h.2.mlp.c_proj.weight"]
    assert 0 < float(delta.detach().abs().max()) <= 1e-3 + 1e-7
    ft.reset()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name


def test_target_optimizer_moves_the_prediction(setup):
    model, tokenizer, requests, _ = setup
    optimizer = TargetOptimizer(HPARAMS)
    z = optimizer(model, tokenizer, requests[:2], LAYERS[-1])
    assert z.shape == (2, model.config.n_embd) and len(optimizer.nll_history) == 2
