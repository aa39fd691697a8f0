"""The shipped teaching model: loads offline like any GPT-2, knows its facts, stores them at the
subject; the tools that read keys, find target vectors and trace facts behave."""

import os
import subprocess
import sys

import pytest
import torch
from transformers import GPT2LMHeadModel

from nullspace.data_checksums import mismatches, read_checksums
from nullspace.editing.hparams import hparams_for
from nullspace.editing.keys import compute_ks, ffn_output_layer, subject_token_index
from nullspace.editing.models import COURSE_MODEL_DIR, ModelNotAvailableError, load_model
from nullspace.editing.evaluation.recall import next_token_logits, object_token_id
from nullspace.editing.targets import adding_to_hidden_state, compute_z
from nullspace.editing.world.teaching_model import TrainingConfig, build_model, fact_recall
from nullspace.editing.world.tokenizer import build_tokenizer
from nullspace.editing.trace import trace_fact
from nullspace.editing.world.facts import generate_world, load_counterfact, load_world
from nullspace.paths import DATA_DIR, REPO_ROOT


@pytest.fixture(scope="module")
def shipped():
    torch.manual_seed(0)
    model, tokenizer = load_model("course-gpt2", device="cpu")
    return model, tokenizer, load_world()


def test_checksums_of_shipped_files_match():
    assert not mismatches(), "data/ differs from data/CHECKSUMS.sha256"
    recorded = read_checksums()
    for path in (COURSE_MODEL_DIR / "model.safetensors", DATA_DIR / "world" / "counterfact.json"):
        assert str(path.relative_to(REPO_ROOT)) in recorded


def test_a_changed_file_is_reported(tmp_path):
    listing = tmp_path / "CHECKSUMS.sha256"
    listing.write_text("0" * 64 + "  data/world/world.json\n")
    assert any(p.startswith("changed: data/world/world.json") for p in mismatches(listing))


def test_shipped_model_is_a_plain_gpt2_in_safetensors(shipped):
    model, tokenizer, _ = shipped
    assert isinstance(model, GPT2LMHeadModel)
    assert (COURSE_MODEL_DIR / "model.safetensors").exists()
    size_mb = sum(p.stat().st_size for p in COURSE_MODEL_DIR.iterdir()) / 1e6
    assert size_mb < 10, f"the shipped model takes {size_mb:.1f} MB"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id


def test_loading_works_offline():
    code = ("from nullspace.editing.models import load_model; m, t = load_model('course-gpt2'); "
            "print(type(m).__name__, len(t))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.startswith("GPT2LMHeadModel")


@pytest.mark.bad_input
def test_missing_gpt2_xl_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError, match="(?s)not in the local Hugging Face cache.*7 GB"):
        load_model("gpt2-xl", device="cpu")


def test_shipped_model_knows_its_facts(shipped):
    model, tokenizer, world = shipped
    assert fact_recall(model, tokenizer, world, "templates") >= 0.95
    assert fact_recall(model, tokenizer, world, "questions", bio_only=True) >= 0.85


def test_a_vector_at_the_subject_rewrites_the_fact(shipped):
    model, tokenizer, _ = shipped
    hparams = hparams_for("course-gpt2")
    successes = 0
    requests = [r["requested_rewrite"] for r in load_counterfact()[:10]]
    for request in requests:
        target = compute_z(model, tokenizer, request, hparams)
        assert target.norm_ratio <= hparams.clamp_norm_factor + 1e-4
        position = subject_token_index(tokenizer, request["prompt"], request["subject"])
        with adding_to_hidden_state(model, hparams.target_layer, [position], target.delta):
            top = next_token_logits(model, tokenizer, [request["prompt"].format(request["subject"])]).argmax(-1)
        successes += int(top[0]) == object_token_id(tokenizer, request["target_new"]["str"])
    assert successes >= 9


def test_keys_are_the_inputs_of_the_ffn_output_matrix(shipped):
    model, tokenizer, world = shipped
    person = world.people[0]
    layer = hparams_for("course-gpt2").layers[0]
    key = compute_ks(model, tokenizer, layer, ["{} lives in"], [person.name])[0]
    assert key.shape == (ffn_output_layer(model, layer).weight.shape[0],)
    captured = []
    handle = model.transformer.h[layer].mlp.register_forward_hook(lambda _m, _i, out: captured.append(out))
    with torch.no_grad():
        model(**tokenizer([f"{person.name} lives in"], return_tensors="pt"))
    handle.remove()
    value = key @ ffn_output_layer(model, layer).weight + ffn_output_layer(model, layer).bias
    torch.testing.assert_close(value, captured[0][0, 0], rtol=1e-4, atol=1e-4)


@pytest.mark.bad_input
def test_context_averaging_and_bad_prompts(shipped):
    model, tokenizer, world = shipped
    name = world.people[1].name
    alone = compute_ks(model, tokenizer, 0, ["{} speaks"], [name])
    averaged = compute_ks(model, tokenizer, 0, ["{} speaks"], [name], ["{}", "Tordel owns a dog. {}"])
    assert alone.shape == averaged.shape and not torch.allclose(alone, averaged)
    with pytest.raises(ValueError, match="exactly one"):
        subject_token_index(tokenizer, "no subject here", name)


def test_trace_restoring_everything_recovers_the_clean_answer(shipped):
    model, tokenizer, world = shipped
    person = world.people[2]
    result = trace_fact(model, tokenizer, "{} lives in", person.name, person.facts["city"], kind="hidden",
                        noise=3.0, samples=4)
    assert result.p_corrupt < result.p_clean
    last_layer = result.restored.shape[0] - 1
    assert result.restored[last_layer, -1] == pytest.approx(result.p_clean, abs=1e-5)


def test_build_model_zeroes_and_freezes_the_split_sublayers():
    world = generate_world(seed=2, n_people=20)
    tokenizer = build_tokenizer(world.vocabulary_words())
    config = TrainingConfig(n_people=20, mlp_blocks=2, attention_blocks=2, d_ff=64, random_keys=True)
    model = build_model(config, tokenizer)
    for index, block in enumerate(model.transformer.h):
        zeroed = block.attn if index < 2 else block.mlp
        assert all(not p.requires_grad and not p.any() for p in zeroed.parameters())
    assert not model.transformer.h[0].mlp.c_fc.weight.requires_grad
    assert model.transformer.h[0].mlp.c_proj.weight.requires_grad
