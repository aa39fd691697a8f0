"""A tokenizer that prepends a BOS token (Llama 3's does): the subject's last-token index, the
target rows and the model's inputs count it as the official code does (it tokenises with the
tokenizer's defaults: ``len(tok.encode(prefix + subject)) - 1``, targets the last tokens of each row)."""

import pytest
import torch
from glue_toy import bpe_tokenizer

from nullspace.editing.hparams import hparams_for
from nullspace.editing.keys import subject_token_index
from nullspace.editing.prompts import encode_right_padded, leading_special_ids, target_token_batch
from nullspace.editing.targets import _request_rows

PROMPTS = [("{} lives in", "Ava"), ("The home town of {} is", "Bo"), ("Where does {} live?", "Cy"),
           ("Review : {} is a joy", "the film")]


def official_index(tokenizer, prompt: str, subject: str) -> int:
    """The official ``get_words_idxs_in_templates(..., subtoken="last")``, written out."""
    prefix = prompt.split("{}")[0]
    prefix_len = len(tokenizer.encode(prefix))
    prompt_len = len(tokenizer.encode(prefix + subject))
    return prefix_len + (prompt_len - prefix_len) - 1


@pytest.mark.parametrize("bos", [False, True])
def test_subject_index_matches_the_official_count(bos):
    tokenizer = bpe_tokenizer(bos=bos)
    assert leading_special_ids(tokenizer) == ([tokenizer.bos_token_id] if bos else [])
    for prompt, subject in PROMPTS:
        index = subject_token_index(tokenizer, prompt, subject)
        assert index == official_index(tokenizer, prompt, subject)
        model_input = encode_right_padded(tokenizer, [prompt.format(subject)])["input_ids"][0].tolist()
        assert model_input == tokenizer(prompt.format(subject))["input_ids"]  # what the official model reads
        last_subject_token = tokenizer(subject, add_special_tokens=False)["input_ids"][-1]
        assert model_input[index] == last_subject_token


@pytest.mark.parametrize("bos", [False, True])
def test_target_rows_and_positions_match_the_official_compute_z(bos):
    tokenizer = bpe_tokenizer(bos=bos)
    hparams = hparams_for("gpt2-xl")
    contexts = ["{}", "Review : the film. {}"]
    request = {"prompt": "{} lives in", "subject": "Ava", "target_new": {"str": "Paris"}}
    rows = _request_rows(tokenizer, [request], hparams, contexts, torch.device("cpu"))
    target = tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    for i, context in enumerate(contexts):
        prompt = context.replace("{}", request["prompt"])
        # official: tok(prompt + decode(target[:-1])) with the defaults; the target fills the row's last slots
        expected = tokenizer(prompt.format("Ava") + tokenizer.decode(target[:-1]))["input_ids"]
        length = int(rows.attention_mask[i].sum())
        assert rows.input_ids[i, :length].tolist() == expected
        labelled = (rows.labels[i] != -100).nonzero().flatten().tolist()
        assert labelled == list(range(length - len(target), length))
        assert rows.labels[i, labelled].tolist() == target
        assert int(rows.positions[i]) == official_index(tokenizer, prompt, "Ava")
    kl = int(rows.kl_rows[0])
    kl_length = int(rows.attention_mask[kl].sum())
    assert rows.input_ids[kl, :kl_length].tolist() == tokenizer(hparams.kl_prompt.format("Ava"))["input_ids"]
    assert int(rows.kl_slots[0]) == official_index(tokenizer, hparams.kl_prompt, "Ava")


@pytest.mark.parametrize("bos", [False, True])
def test_scored_targets_follow_their_prompt_after_the_bos(bos):
    tokenizer = bpe_tokenizer(bos=bos)
    inputs, labels = target_token_batch(tokenizer, ["Ava lives in"], ["Paris"], torch.device("cpu"))
    assert inputs["input_ids"][0].tolist() == tokenizer("Ava lives in Paris")["input_ids"]
    target = tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    assert labels[0][labels[0] != -100].tolist() == target
    assert (labels[0] != -100).nonzero().flatten().tolist()[0] == len(tokenizer("Ava lives in")["input_ids"])


@pytest.mark.parametrize("bos", [False, True])
def test_generated_texts_open_with_the_bos_and_count_it_in_their_length(bos):
    """The official generate_fast tokenises prompts with the defaults (Llama 3: BOS first) and
    generates until the text is max_out_len tokens long, the BOS included."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from nullspace.editing.evaluation.counterfact import generate

    tokenizer = bpe_tokenizer(bos=bos)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=16, n_layer=1, n_head=2))
    inputs = []
    model.register_forward_pre_hook(lambda _, args, kwargs: inputs.append(kwargs["input_ids"].clone()),
                                    with_kwargs=True)
    prompts = ["Ava lives in", "The home town of Bo is"]
    texts = generate(model, tokenizer, prompts, max_length=24, skip_special_tokens=False, known_words_only=False)
    official = sorted((tokenizer(p)["input_ids"] for p in prompts), key=len)  # one group per prompt length
    assert [step[0].tolist() for step in inputs if step.shape[1] > 1] == official
    assert len(inputs) == sum(24 - len(ids) for ids in official)  # one forward per new token
    assert all(text.startswith("<s>") == bos for text in texts)
