"""The official protocol's choices and their switches: sampled context templates, the grouped
key weighting, batched target vectors, the KL position, ROME's target and insertion, and the
two MEMIT baselines."""

import json
import runpy

import pytest
import torch
from editing_toy import toy_setup

from nullspace.editing.contexts import MEMIT_CONTEXT_LENGTHS, ROME_CONTEXT_LENGTHS, sampled_context_templates
from nullspace.editing.evaluation import protocol
from nullspace.editing.hparams import EditHyperParams, MethodHyperParams
from nullspace.editing.keys import compute_ks, context_weights
from nullspace.editing.methods.memit import MemitEditor, memit_update
from nullspace.editing.methods.rome import RomeEditor, rome_update
from nullspace.editing.methods.sequential import request_keys, subject_outputs
from nullspace.editing.targets import compute_z, compute_zs
from nullspace.linalg import AbsoluteRule
from nullspace.paths import REPO_ROOT

HPARAMS = EditHyperParams(layers=(0, 1), v_num_grad_steps=6, v_lr=0.5, kl_factor=0.0625, v_weight_decay=0.5,
                          clamp_norm_factor=0.75)


@pytest.fixture(scope="module")
def toy():
    return toy_setup([0, 1])


def rewrite(request):
    return {"prompt": request.prompt, "subject": request.subject, "target_new": {"str": request.target_new}}


def test_sampled_context_templates_follow_the_official_recipe(toy):
    model, tokenizer, _, _ = toy
    memit = sampled_context_templates(model, tokenizer, MEMIT_CONTEXT_LENGTHS, seed=1)
    rome = sampled_context_templates(model, tokenizer, ROME_CONTEXT_LENGTHS, seed=1)
    assert len(memit) == 1 + 5 and len(rome) == 1 + 20
    assert memit[0] == rome[0] == "{}"
    for template in memit[1:] + rome[1:]:
        assert template.endswith(". {}") and template.count("{}") == 1
        assert "<|endoftext|>" not in template
    assert memit == sampled_context_templates(model, tokenizer, MEMIT_CONTEXT_LENGTHS, seed=1)
    # the openings are used in turn: "The" is in the toy vocabulary, the four others are unknown
    assert [t.split()[0] for t in memit[1:]] == ["The"] + ["<|unk|>"] * 4
    with pytest.raises(ValueError, match="multiple"):
        sampled_context_templates(model, tokenizer, ((10, 7),))


def test_grouped_weighting_is_half_bare_prompt_half_the_prefixes(toy):
    model, tokenizer, requests, _ = toy
    contexts = ("{}", "The city. {}", "Ava lives in Rome. {}", "Bo works as a chef. {}")
    assert torch.allclose(context_weights(contexts), torch.tensor([0.5, 1 / 6, 1 / 6, 1 / 6]))
    assert torch.allclose(context_weights(contexts, "flat"), torch.full((4,), 0.25))
    assert torch.equal(context_weights(("{}",)), torch.ones(1))
    r = requests[0]
    per_context = torch.stack([compute_ks(model, tokenizer, 1, [r.prompt], [r.subject], (c,))[0] for c in contexts])
    grouped = compute_ks(model, tokenizer, 1, [r.prompt], [r.subject], contexts)[0]
    assert torch.allclose(grouped, 0.5 * per_context[0] + 0.5 * per_context[1:].mean(0), atol=1e-6)
    flat = compute_ks(model, tokenizer, 1, [r.prompt], [r.subject], contexts, "flat")[0]
    assert torch.allclose(flat, per_context.mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="bare prompt"):
        context_weights(("The city. {}", "{}"))
    with pytest.raises(ValueError, match="weighting"):
        context_weights(contexts, "energy")


def test_batched_target_vectors_equal_one_at_a_time(toy):
    model, tokenizer, requests, _ = toy
    contexts = ("{}", "The city. {}")
    alone = [compute_z(model, tokenizer, rewrite(r), HPARAMS, contexts) for r in requests[:4]]
    together = compute_zs(model, tokenizer, [rewrite(r) for r in requests[:4]], HPARAMS, contexts, chunk=3)
    for a, b in zip(alone, together, strict=True):
        assert a.steps == b.steps
        assert float((a.z - b.z).norm()) <= 1e-5 * float(a.z.norm())
        assert abs(a.nll - b.nll) < 1e-5
        assert a.norm_ratio <= HPARAMS.clamp_norm_factor + 1e-6


def reference_compute_z(model, tokenizer, request, hparams, contexts, at="block"):
    """The official compute_z transcribed plainly: full forward passes, one request, δ added by a hook."""
    import torch.nn.functional as F

    from nullspace.editing.keys import subject_token_index
    from nullspace.editing.targets import adding_to_hidden_state

    layer, subject = hparams.target_layer, request["subject"]
    target = tokenizer(" " + request["target_new"]["str"])["input_ids"]
    prompts = [c.replace("{}", request["prompt"]) for c in contexts]
    texts = [tokenizer(p.format(subject))["input_ids"] + target[:-1] for p in prompts]
    kl_ids = tokenizer(hparams.kl_prompt.format(subject))["input_ids"]
    positions = [subject_token_index(tokenizer, p, subject) for p in prompts]
    kl_position = subject_token_index(tokenizer, hparams.kl_prompt, subject)
    module = model.transformer.h[layer] if at == "block" else model.transformer.h[layer].mlp
    captured = []
    handle = module.register_forward_hook(lambda _m, _i, o: captured.append(o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        model(input_ids=torch.tensor([texts[0]]))
    handle.remove()
    h = captured[0][0, positions[0]].float()
    delta = torch.zeros_like(h, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=hparams.v_lr)
    reference = None
    for step in range(1, hparams.v_num_grad_steps + 1):
        nll = 0.0
        for row, position in zip(texts, positions):
            with adding_to_hidden_state(model, layer, [position], delta, at):
                logits = model(input_ids=torch.tensor([row])).logits[0]
            start = len(row) - len(target)
            log_probs = F.log_softmax(logits[start:start + len(target)], -1)
            nll = nll - log_probs[torch.arange(len(target)), torch.tensor(target)].mean() / len(texts)
        with adding_to_hidden_state(model, layer, [kl_position], delta, at):
            kl_log_probs = F.log_softmax(model(input_ids=torch.tensor([kl_ids])).logits[0, kl_position], -1)
        reference = kl_log_probs.detach() if reference is None else reference
        kl = F.kl_div(reference, kl_log_probs, log_target=True, reduction="sum")
        loss = nll + hparams.kl_factor * kl + hparams.v_weight_decay * delta.norm() / h.norm() ** 2
        if loss.item() < hparams.early_stop_loss or step == hparams.v_num_grad_steps:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            if delta.norm() > hparams.clamp_norm_factor * h.norm():
                delta.mul_(hparams.clamp_norm_factor * h.norm() / delta.norm())
    return h + delta.detach(), step


@pytest.mark.parametrize("at", ["block", "mlp"])
def test_target_vectors_match_a_plain_transcription_of_the_official_compute_z(toy, at):
    model, tokenizer, requests, _ = toy
    contexts = ("{}", "The city. {}", "Bo works as a chef. {}")
    for request in requests[:2]:
        z, steps = reference_compute_z(model, tokenizer, rewrite(request), HPARAMS, contexts, at)
        ours = compute_z(model, tokenizer, rewrite(request), HPARAMS, contexts, at)
        assert ours.steps == steps
        assert float((ours.z - z).norm()) <= 1e-4 * float(z.norm())


def test_kl_position_and_target_reference_are_switches(toy):
    model, tokenizer, requests, _ = toy
    request = rewrite(requests[0])
    at_subject = compute_z(model, tokenizer, request, HPARAMS)
    at_last = compute_z(model, tokenizer, request, EditHyperParams(**{**HPARAMS.__dict__, "kl_position": "last"}))
    assert not torch.allclose(at_subject.delta, at_last.delta), "the KL position must change the target"
    mlp = compute_z(model, tokenizer, request, HPARAMS, at="mlp")
    mlp_now = subject_outputs(model, tokenizer, 1, requests[:1], at="mlp")[0]
    block_now = subject_outputs(model, tokenizer, 1, requests[:1])[0]
    assert torch.allclose(mlp.hidden, mlp_now, atol=1e-5) and torch.allclose(at_subject.hidden, block_now, atol=1e-5)
    with pytest.raises(ValueError, match="kl_position"):
        EditHyperParams(**{**HPARAMS.__dict__, "kl_position": "middle"})
    with pytest.raises(ValueError, match="at must be"):
        compute_z(model, tokenizer, request, HPARAMS, at="attention")


def test_rome_inserts_exactly_at_the_bare_prompt_key():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, generator=g, dtype=torch.float64)
    c = x.T @ x / 200
    averaged, bare = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    bare = averaged + 0.1 * bare  # a key read in one context, near the average over contexts
    residual = torch.randn(4, generator=g, dtype=torch.float64)
    delta = rome_update(averaged, residual, c, insertion_key=bare, ridge=0)
    assert torch.allclose(delta @ bare, residual, atol=1e-12)
    assert torch.linalg.matrix_rank(delta) == 1
    direction = torch.linalg.solve(c, averaged)
    assert torch.allclose(delta / delta.norm(), torch.outer(residual, direction) / torch.outer(residual, direction).norm())
    paired_with_the_average = rome_update(averaged, residual, c, ridge=0)  # the earlier course pairing
    assert float((paired_with_the_average @ bare - residual).norm() / residual.norm()) > 1e-3


def test_rome_editor_reaches_its_target_at_the_bare_prompt(toy):
    model, tokenizer, requests, c0 = toy
    contexts = ("{}", "The city. {}", "Ava lives in Rome. {}")
    now = subject_outputs(model, tokenizer, 1, requests[:1], at="mlp")
    z = now + 0.5 * torch.randn(now.shape, generator=torch.Generator().manual_seed(2))
    editor = RomeEditor(model, tokenizer, 1, lambda *_: z, key_covariance=c0[1], context_templates=contexts)
    editor.edit(requests[:1])
    reached = subject_outputs(model, tokenizer, 1, requests[:1], at="mlp")
    assert float((reached - z).norm() / (z - now).norm()) < 1e-4
    editor.reset()


def test_memit_table1_keeps_no_cache_and_eq15_does(toy):
    model, tokenizer, requests, c0 = toy

    def shifted(model, tokenizer, batch, layer):
        now = subject_outputs(model, tokenizer, layer, batch)
        return now + 0.3 * torch.randn(now.shape, generator=torch.Generator().manual_seed(len(batch)))

    table1 = MemitEditor(model, tokenizer, (1,), shifted, key_covariances=c0, covariance_weight=5.0)
    assert table1.variant == "table1" and not table1.keeps_edited_keys
    table1.edit(requests[:3])
    keys = request_keys(model, tokenizer, 1, requests[3:], ("{}",))
    residuals = shifted(model, tokenizer, requests[3:], 1) - subject_outputs(model, tokenizer, 1, requests[3:])
    expected = memit_update(keys, residuals, c0[1], covariance_weight=5.0)  # λC0 + K1K1ᵀ, nothing else
    before = model.transformer.h[1].mlp.c_proj.weight.detach().clone()
    table1.edit(requests[3:])
    applied = (model.transformer.h[1].mlp.c_proj.weight.detach() - before).T
    assert table1.edited_covariance == {}
    assert torch.allclose(applied.double(), expected, rtol=1e-4, atol=1e-6)
    table1.reset()
    eq15 = MemitEditor(model, tokenizer, (1,), shifted, key_covariances=c0, covariance_weight=5.0, variant="eq15")
    eq15.edit(requests[:3])
    assert set(eq15.edited_covariance) == {1}
    eq15.reset()
    with pytest.raises(ValueError, match="table1"):
        MemitEditor(model, tokenizer, (1,), shifted, key_covariances=c0, covariance_weight=5.0, variant="cached")


def test_method_settings_name_their_allowed_values():
    base = {"memit_covariance_weight": 1.0, "alphaedit_rule": AbsoluteRule(1e-2), "alphaedit_l2": 1.0,
            "rome_layer": 0, "ft_layers": (1,), "ft_learning_rate": 1e-2, "ft_steps": 5, "ft_norm_constraint": 1e-2,
            "statistics_texts": 10}
    assert MethodHyperParams(**base).memit_variant == "table1"
    for field, bad in (("memit_variant", "cached"), ("context_source", "web"), ("rome_target", "attn"),
                       ("key_weighting", "energy")):
        with pytest.raises(ValueError, match=field):
            MethodHyperParams(**base, **{field: bad})


def test_cached_results_are_refused_when_settings_model_or_data_change(tmp_path, monkeypatch):
    from nullspace.editing.evaluation import protocol

    path = tmp_path / "results.json"
    path.write_text(json.dumps({"fingerprint": protocol.protocol_fingerprint(), "rows": []}), encoding="utf-8")
    assert protocol.load_lesson_results(path)["rows"] == []
    monkeypatch.setattr(protocol, "PROTOCOL_VERSION", protocol.PROTOCOL_VERSION + 1)
    with pytest.raises(ValueError, match="protocol.*re-run"):
        protocol.load_lesson_results(path)
    with pytest.raises(FileNotFoundError, match="benchmarks/editing.py"):
        protocol.load_lesson_results(tmp_path / "missing.json")


def test_describe_settings_is_short_and_readable():
    from nullspace.editing.evaluation.protocol import describe_settings

    assert describe_settings({}) == "default"
    assert describe_settings({"memit_variant": "table1", "memit_covariance_weight": 1000.0}) == "table1, λ=1000"
    assert describe_settings({"alphaedit_rule": AbsoluteRule(2e-2), "alphaedit_l2": 10.0}) == "λ < 0.02, L2=10"


def benchmark_module() -> dict:
    return runpy.run_path(str(REPO_ROOT / "benchmarks" / "editing.py"))


def test_two_invocations_sharing_the_results_file_keep_each_others_rows(tmp_path):
    """Each save merges what another invocation wrote since; --fresh and another fingerprint do not."""
    results_class = benchmark_module()["Results"]
    path = tmp_path / "editing.json"
    first, second = results_class(path, {"v": 1}, fresh=False), results_class(path, {"v": 1}, fresh=False)
    first.add("zsre|AlphaEdit", {"efficacy": 1.0})
    second.data["measurements"]["fluency"] = 600.0
    second.add("ablation|MEMIT", {"efficacy": 2.0})
    first.add("alphaedit|AlphaEdit", {"efficacy": 3.0})
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert set(stored["rows"]) == {"zsre|AlphaEdit", "ablation|MEMIT", "alphaedit|AlphaEdit"}
    assert stored["measurements"] == {"fluency": 600.0}
    assert not list(tmp_path.glob("*.partial"))
    results_class(path, {"v": 1}, fresh=True).add("table|FT", {"efficacy": 4.0})
    assert set(json.loads(path.read_text(encoding="utf-8"))["rows"]) == {"table|FT"}
    results_class(path, {"v": 2}, fresh=False).add("table|ROME", {"efficacy": 5.0})
    assert set(json.loads(path.read_text(encoding="utf-8"))["rows"]) == {"table|ROME"}


def test_methods_select_runs_by_method_name_or_row_label():
    bench = benchmark_module()
    methods = [("MEMIT", {"memit_variant": "table1"}), ("AlphaEdit", {}), ("ROME", {"rome_layer": 1})]
    runs = bench["ablation_runs"](methods, 20)
    chosen = [run.label for run in runs if bench["selected"](run, ["ROME: target at the block output"])]
    assert chosen == ["ROME: target at the block output"]
    table1 = [run for run in runs if bench["selected"](run, ["MEMIT (Table 1: no cache of edited keys)"])]
    assert len(table1) == 6 and all(run.method == "MEMIT" for run in table1)
    assert not [run for run in runs if bench["selected"](run, ["FT"])]


def test_settings_are_chosen_per_baseline_by_the_held_out_score():
    """The tuning part keeps, per Table-1 method (MEMIT per variant), the grid point with the best S
    on the held-out requests; the lesson's copy keeps every row and the choice."""
    bench = benchmark_module()
    grid = protocol.TUNING_GRIDS["MEMIT"]
    table1 = [i for i, p in enumerate(grid) if p["memit_variant"] == "table1"]
    eq15 = [i for i, p in enumerate(grid) if p["memit_variant"] == "eq15"]
    rows = [{"method": "MEMIT", "label": f"MEMIT grid point {i}: x", "settings": f"s{i}", "S": s, "fact_accuracy": 90.0}
            for i, s in ((table1[0], 80.0), (table1[1], 85.0), (eq15[0], 70.0), (eq15[2], 60.0))]
    rows.append({"method": "AlphaEdit", "label": "AlphaEdit grid point 3: x", "settings": "a3", "S": 88.0,
                 "fact_accuracy": 91.0})
    chosen = bench["choose"](rows)
    assert chosen["MEMIT (Table 1: no cache of edited keys)"]["index"] == table1[1]
    assert chosen["MEMIT + Kp (Eq. 15)"]["index"] == eq15[0]
    assert chosen["AlphaEdit"] == {"method": "AlphaEdit", "index": 3, "settings": "a3", "S": 88.0,
                                   "fact_accuracy": 91.0}
    subset = bench["lesson_subset"]({"fingerprint": {}, "unedited": {}, "tuning": {"chosen": chosen},
                                     "measurements": {}, "rows": {"k": rows[0]}, "wall_seconds": {}})
    assert subset["rows"] == [rows[0]] and subset["tuning"]["chosen"] == chosen and "wall_seconds" not in subset
