"""K0 of the preserved facts (nullspace.editing.preserved) and its use by the workbench."""

import pytest
import torch

from nullspace.editing.geometry import kept_share
from nullspace.editing.keys import compute_ks
from nullspace.editing.models import load_model
from nullspace.editing.preserved import knowledge_covariance, preserved_fact_keys
from nullspace.editing.statistics import collect_key_statistics
from nullspace.editing.world.facts import load_world
from nullspace.linalg import AbsoluteRule, null_space


def test_knowledge_covariance_adds_the_facts_second_moment():
    g = torch.Generator().manual_seed(0)
    corpus = torch.randn(20, 6, generator=g, dtype=torch.float64)
    corpus = corpus.T @ corpus / 20
    keys = torch.randn(9, 6, generator=g, dtype=torch.float64)
    assert torch.equal(knowledge_covariance(corpus, keys, 0.0), corpus)
    assert torch.equal(knowledge_covariance(corpus, None, 0.0), corpus)
    expected = corpus + 2.5 * keys.T @ keys / 9
    assert torch.allclose(knowledge_covariance(corpus, keys.float(), 2.5), expected, rtol=1e-6)


@pytest.mark.parametrize("keys, weight, message", [
    (torch.ones(3, 6), -1.0, "≥ 0"),
    (None, 1.0, "preserved_fact_keys"),
    (torch.ones(3, 5), 1.0, "same layer"),
])
@pytest.mark.bad_input
def test_knowledge_covariance_rejects_bad_input(keys, weight, message):
    with pytest.raises(ValueError, match=message):
        knowledge_covariance(torch.eye(6, dtype=torch.float64), keys, weight)


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer = load_model("course-gpt2", device="cpu")
    return model, tokenizer, load_world()


def test_fact_keys_are_the_subject_keys_of_every_fact_prompt(shipped):
    model, tokenizer, world = shipped
    person = world.preserved_people[0]
    keys = preserved_fact_keys(model, tokenizer, world, [person], [0, 1])
    prompts = world.fact_prompts(person, "templates") + world.fact_prompts(person, "questions")
    assert keys[1].shape == (len(prompts), model.transformer.h[1].mlp.c_proj.weight.shape[0])
    _, first_prompt, _ = prompts[0]
    direct = compute_ks(model, tokenizer, 1, [first_prompt.replace(person.name, "{}", 1)], [person.name])
    assert torch.allclose(keys[1][0].float(), direct[0], atol=1e-6)
    with pytest.raises(ValueError, match="at least one"):
        preserved_fact_keys(model, tokenizer, world, [], [0])


def test_facts_in_c0_confine_the_preserved_keys(shipped):
    """With the facts' keys in C0, AlphaEdit's projector removes most of a preserved key and keeps
    a good share of an edit key; with the corpus statistic alone it cannot tell them apart."""
    model, tokenizer, world = shipped
    layer = 1
    preserved = preserved_fact_keys(model, tokenizer, world, world.preserved_people[:100], [layer])[layer]
    edited = compute_ks(model, tokenizer, layer, ["{} lives in"] * 100, [p.name for p in world.edit_people[:100]])
    texts = world.general_text(biographies_per_person=1)
    corpus = collect_key_statistics(model, tokenizer, [layer], texts)[layer].covariance
    shares = {}
    for alpha in (0.0, 1.0):
        space = null_space(knowledge_covariance(corpus, preserved, alpha), AbsoluteRule(1e-2))
        shares[alpha] = (float(kept_share(space, preserved).mean()), float(kept_share(space, edited).mean()))
    assert shares[1.0][0] < 0.15 < shares[0.0][0]
    assert shares[1.0][1] > 0.3


def test_gpt2_xl_settings_run_end_to_end_on_a_small_stand_in(monkeypatch, tmp_path):
    """NULLSPACE_EDIT_MODEL=gpt2-xl reaches the workbench, the editors and the lessons' loop: a
    random 18-block GPT-2 of tiny width stands in for the weights nobody can download here. With
    GPT-2 XL's settings C0 is the corpus statistic alone (it does not know the fact world)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from nullspace.editing import workbench
    from nullspace.editing.evaluation.experiment import run_sequential_editing
    from nullspace.editing.world.tokenizer import build_tokenizer

    tokenizer = build_tokenizer(load_world().vocabulary_words())
    torch.manual_seed(0)
    # initializer_range 0.2: keys large enough that the official threshold 2e-2 leaves a protected
    # space (at the default 0.02 every eigenvalue of C0 is below it, P = I, which is refused)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=18, n_head=2,
                        initializer_range=0.2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    stand_in = GPT2LMHeadModel(config).eval()
    monkeypatch.setenv("NULLSPACE_EDIT_MODEL", "gpt2-xl")
    monkeypatch.setattr(workbench, "load_model", lambda name: (stand_in, tokenizer))
    bench = workbench.prepare_workbench(edits=4, probe_facts=8, statistics_cache=tmp_path)
    assert bench.model_name == "gpt2-xl" and bench.hparams.layers == (13, 14, 15, 16, 17)
    assert bench.fact_keys is None and bench.methods.preserved_keys_weight == 0
    assert min(p.name for p in (tmp_path / "gpt2-xl").iterdir()) == "layer13_texts960.npz"
    before = {n: p.detach().clone() for n, p in stand_in.named_parameters()}
    for method in ("MEMIT", "AlphaEdit"):
        editor = bench.editor(method)
        result = run_sequential_editing(editor, bench.tokenizer, bench.requests, 2, bench.probe,
                                        evaluation=bench.evaluation(generation_interval=2))
        assert editor.edits_done == 4 and set(editor.weight_change()) == {13, 14, 15, 16, 17}
        assert result.scores["efficacy"] >= 0
        editor.reset()
    assert all(torch.equal(p, before[n]) for n, p in stand_in.named_parameters())
