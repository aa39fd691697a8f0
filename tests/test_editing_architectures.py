"""Every editing code path on tiny random GPT-2, GPT-J and Llama models (built offline), and the
batched causal trace against one forward pass per restoration."""

import numpy as np
import pytest
import torch
from editing_toy import toy_corpus, toy_model, toy_records, toy_tokenizer
from transformers import GPTJConfig, GPTJForCausalLM, LlamaConfig, LlamaForCausalLM

from nullspace.capture import weight_as_matrix
from nullspace.editing import architectures
from nullspace.editing.keys import compute_ks, subject_token_index
from nullspace.editing.methods.alphaedit import AlphaEditEditor
from nullspace.editing.methods.memit import MemitEditor
from nullspace.editing.methods.sequential import subject_outputs
from nullspace.editing.requests import requests_from_counterfact
from nullspace.editing.statistics import collect_key_statistics, model_fingerprint
from nullspace.editing.trace import KINDS, trace_fact
from nullspace.linalg import RelativeRule
from nullspace.projector import fast_projector

LAYERS = (0, 1)


def tiny(family: str, tokenizer):
    torch.manual_seed(0)
    common = {"vocab_size": len(tokenizer), "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    if family == "gpt2":
        return toy_model(tokenizer)
    if family == "gptj":
        return GPTJForCausalLM(GPTJConfig(n_positions=64, n_embd=32, n_layer=3, n_head=4, rotary_dim=4, n_inner=64,
                                          resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common)).eval()
    return LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                        **common)).eval()


FAMILIES = ("gpt2", "gptj", "llama")
EDITED = {"gpt2": "transformer.h.1.mlp.c_proj", "gptj": "transformer.h.1.mlp.fc_out",
          "llama": "model.layers.1.mlp.down_proj"}


@pytest.fixture(scope="module")
def tokenizer():
    return toy_tokenizer()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_table_names_the_official_modules(family, tokenizer):
    model = tiny(family, tokenizer)
    assert architectures.ffn_output(model, 1) is model.get_submodule(EDITED[family])
    assert weight_as_matrix(architectures.ffn_output(model, 1)).shape == (32, 64)  # the paper's (d_model, d_ff)
    assert architectures.hidden_size(model) == 32
    with pytest.raises(IndexError, match="blocks 0..2"):
        architectures.ffn_output(model, 3)


def test_an_unknown_family_is_refused(tokenizer):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="not supported.*gpt2, gptj, llama"):
        architectures.architecture_of(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_keys_are_the_edited_matrix_inputs(family, tokenizer):
    model = tiny(family, tokenizer)
    prompt, subject = "{} lives in", "Ava"
    keys = compute_ks(model, tokenizer, 1, [prompt], [subject])
    seen = []
    handle = architectures.ffn_output(model, 1).register_forward_hook(lambda _m, i, _o: seen.append(i[0]))
    with torch.no_grad():
        model(**tokenizer(prompt.format(subject), return_tensors="pt"))
    handle.remove()
    assert torch.allclose(keys[0], seen[0][0, subject_token_index(tokenizer, prompt, subject)], atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_memit_and_alphaedit_edit_every_family(family, tokenizer):
    model = tiny(family, tokenizer)
    requests = requests_from_counterfact(toy_records(6))
    stats = collect_key_statistics(model, tokenizer, list(LAYERS), toy_corpus(), batch_size=8)
    # AlphaEdit protects the keys of two texts only (rank ≤ 24 of 64), so the edits have room
    protected = collect_key_statistics(model, tokenizer, list(LAYERS), toy_corpus()[-2:])  # about Lu, not edited
    before = {layer: weight_as_matrix(architectures.ffn_output(model, layer)).detach().clone() for layer in LAYERS}
    last = architectures.block(model, LAYERS[-1])
    assert last is architectures.blocks(model)[LAYERS[-1]]

    def targets(m, tok, reqs, layer):  # fixed targets: a step from where the block output is now
        now = subject_outputs(m, tok, layer, reqs)
        return now + 0.5 * torch.ones_like(now)

    fingerprint_0 = model_fingerprint(model, 0)
    for editor in (MemitEditor(model, tokenizer, LAYERS, targets,
                               key_covariances={l: s.covariance for l, s in stats.items()}, covariance_weight=1e-3),
                   AlphaEditEditor(model, tokenizer, LAYERS, targets, l2_weight=1e-8,  # tiny keys (Llama: ~1e-3)
                                   null_spaces={l: fast_projector(s.covariance, RelativeRule(1e-6), dtype=torch.float64)
                                                for l, s in protected.items()})):
        for batch in (requests[:3], requests[3:]):
            wanted = targets(model, tokenizer, batch, LAYERS[-1])
            editor.edit(batch)
            reached = subject_outputs(model, tokenizer, LAYERS[-1], batch)
            assert float((reached - wanted).norm() / wanted.norm()) < 0.05, editor.name
        changed = weight_as_matrix(architectures.ffn_output(model, 0)).detach()
        assert not torch.equal(changed, before[0])
        editor.reset()
        for layer in LAYERS:
            assert torch.equal(weight_as_matrix(architectures.ffn_output(model, layer)).detach(), before[layer])
    # an edit of block 1 changes the fingerprint of block 1's keys onward, not of block 0's
    with torch.no_grad():
        weight_as_matrix(architectures.ffn_output(model, 1)).add_(0.1)
    assert model_fingerprint(model, 0) == fingerprint_0 and model_fingerprint(model, 2) != model_fingerprint(tiny(
        family, tokenizer), 2)


def one_forward_per_restoration(model, tokenizer, prompt, subject, answer, kind, noise, samples=4, seed=0):
    """The trace as it was before batching: one forward pass per (layer, position)."""
    from nullspace.editing.evaluation.recall import object_token_id

    ids = torch.tensor(tokenizer(prompt.format(subject), add_special_tokens=False)["input_ids"])
    last = subject_token_index(tokenizer, prompt, subject)
    first = last + 1 - len(tokenizer(subject, add_special_tokens=False)["input_ids"])
    positions = list(range(max(first, 0), last + 1))
    answer_id = object_token_id(tokenizer, answer)
    noise_values = noise * torch.randn(samples, len(positions), architectures.hidden_size(model),
                                       generator=torch.Generator().manual_seed(seed))
    batch = ids[None].repeat(samples + 1, 1)

    def corrupt(_m, _i, out):
        out = out.clone()
        out[1:, positions] += noise_values
        return out

    clean = {}
    n_layers = len(architectures.blocks(model))
    hooks = [architectures.sublayer(model, kind, layer).register_forward_hook(
        lambda _m, _i, o, layer=layer: clean.__setitem__(layer, (o[0] if isinstance(o, tuple) else o)[0].clone()))
        for layer in range(n_layers)]
    corrupt_hook = architectures.token_embedding(model).register_forward_hook(corrupt)
    with torch.no_grad():
        model(input_ids=batch)
    for h in hooks:
        h.remove()
    restored = np.zeros((n_layers, len(ids)))
    for layer in range(n_layers):
        for position in range(len(ids)):
            def put(_m, _i, o, layer=layer, position=position):
                t = (o[0] if isinstance(o, tuple) else o).clone()
                t[1:, position] = clean[layer][position]
                return (t, *o[1:]) if isinstance(o, tuple) else t
            h = architectures.sublayer(model, kind, layer).register_forward_hook(put)
            with torch.no_grad():
                probs = torch.softmax(model(input_ids=batch).logits[:, -1].float(), -1)[:, answer_id]
            h.remove()
            restored[layer, position] = float(probs[1:].mean())
    corrupt_hook.remove()
    return restored


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", KINDS)
def test_batched_trace_equals_one_forward_per_restoration(family, kind, tokenizer):
    model = tiny(family, tokenizer)
    expected = one_forward_per_restoration(model, tokenizer, "The home town of {} is", "Ava", "Paris", kind, 0.5)
    traced = trace_fact(model, tokenizer, "The home town of {} is", "Ava", "Paris", kind=kind, noise=0.5, samples=4,
                        max_batch_rows=12)  # several forward passes, restorations of mixed layers in one
    assert traced.restored.shape == expected.shape
    assert np.allclose(traced.restored, expected, rtol=1e-5, atol=1e-7)
