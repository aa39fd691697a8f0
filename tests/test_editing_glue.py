"""The six tasks of AlphaEdit's Fig. 4 from tiny files in the official formats: loading, the
official prompts, the label-word likelihoods against an unbatched reference, F1, and the runner."""

import json
import pickle
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from editing_toy import toy_tokenizer
from glue_toy import bpe_tokenizer, glue_records, write_glue
from sklearn.metrics import f1_score
from test_editing_paper_protocol import write_zsre
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from nullspace.editing.evaluation.glue import GlueEvaluation, glue_prompt, label_word_nlls, task_f1
from nullspace.editing.evaluation.glue_data import GLUE_TASKS, MissingGlueFileError, load_glue_task
from nullspace.editing.run_paper_protocol import main


def gpt2(tokenizer) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()


def llama(tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=256, bos_token_id=1, eos_token_id=0,
                                        pad_token_id=0)).eval()


def test_files_load_with_the_official_split_and_bad_files_are_refused(tmp_path):
    write_glue(tmp_path)
    shots, tests = load_glue_task("sst", tmp_path, tests=4, few_shots=2)
    records = glue_records()["sst2.pkl"]
    assert shots == records[:2] and tests == records[10:14]  # the first 10 are the few-shot pool
    with pytest.raises(ValueError, match="holds 14 records.*at most 4 tests"):
        load_glue_task("sst", tmp_path, tests=5)
    with pytest.raises(ValueError, match="few_shots"):
        load_glue_task("sst", tmp_path, tests=4, few_shots=11)
    (tmp_path / "cola.pkl").unlink()
    with pytest.raises(MissingGlueFileError, match=f"put your copy .* at {tmp_path / 'cola.pkl'}"):
        GlueEvaluation(tmp_path, tests=4)
    (tmp_path / "rte.pkl").write_bytes(pickle.dumps([OrderedDict(sentence1="a", sentence2="b", label=0)] * 14))
    with pytest.raises(ValueError, match="collections.OrderedDict"):  # no object is ever built from a file
        load_glue_task("rte", tmp_path, tests=4)
    (tmp_path / "rte.pkl").write_bytes(pickle.dumps([{"sentence1": "a", "label": 0}] * 14))
    with pytest.raises(ValueError, match="record 0: no \\['sentence2'\\]"):
        load_glue_task("rte", tmp_path, tests=4)


def test_prompts_are_the_official_ones():
    tokenizer = bpe_tokenizer()
    records = glue_records()
    sst = records["sst2.pkl"]
    assert glue_prompt(tokenizer, GLUE_TASKS["sst"], sst[10], [], 1024) == \
        "Review :Ava lives in Paris\nSentiment :"
    assert glue_prompt(tokenizer, GLUE_TASKS["sst"], sst[10], sst[:2], 1024) == \
        ("Review : the film is a joy to watch\nSentiment : negative\n"
         "Review : a dull and tired story\nSentiment : positive\nReview :Ava lives in Paris\nSentiment :")
    mmlu = records["mmlu.pkl"][11]
    assert glue_prompt(tokenizer, GLUE_TASKS["mmlu"], mmlu, [], 1024) == (
        "Question: Which is true of the cat sat on the mat?\n(A) the cat sat on the mat\n(B) a bright and warm day\n"
        "(C) Bo works as a doctor\n(D) it rains in Oslo today\nAnswer:")
    nli = records["nli.pkl"][10]
    assert glue_prompt(tokenizer, GLUE_TASKS["nli"], nli, [], 1024) == \
        "Ava lives in Paris entails the it rains in Oslo today True or False? Answer:"
    assert GLUE_TASKS["nli"].label(nli) == 0 and GLUE_TASKS["nli"].label(records["nli.pkl"][11]) == 1
    assert GLUE_TASKS["cola"].question(records["cola.pkl"][0]).endswith("\nAnswer: ")  # the official trailing space
    # few-shot examples are kept, in order, only while they fit the context less 5 tokens
    question = len(tokenizer(GLUE_TASKS["sst"].question(sst[10]))["input_ids"])
    first = len(tokenizer(GLUE_TASKS["sst"].shot(sst[0]))["input_ids"])
    assert glue_prompt(tokenizer, GLUE_TASKS["sst"], sst[10], sst[:2], question + 5 + first) == \
        GLUE_TASKS["sst"].shot(sst[0]) + GLUE_TASKS["sst"].question(sst[10])


def reference_nll(model, tokenizer, prompt: str, word: str) -> float:
    """One unpadded forward, the word's tokens read right after the prompt's."""
    full = tokenizer(f"{prompt} {word}", return_tensors="pt")["input_ids"]
    prefix = len(tokenizer(prompt)["input_ids"])
    word_ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    assert full[0, prefix:prefix + len(word_ids)].tolist() == word_ids  # the positions hold the word
    with torch.no_grad():
        log_probs = F.log_softmax(model(full).logits[0].double(), dim=-1)
    return float(-sum(log_probs[prefix + j - 1, t] for j, t in enumerate(word_ids)) / len(word_ids))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_label_word_likelihoods_match_an_unbatched_reference(family):
    tokenizer = bpe_tokenizer(bos=family == "llama")
    model = gpt2(tokenizer) if family == "gpt2" else llama(tokenizer)
    if family == "llama":
        assert tokenizer("Answer:")["input_ids"][0] == tokenizer.bos_token_id  # a BOS is prepended
    records = glue_records()
    prompts = [GLUE_TASKS["mrpc"].question(r) for r in records["mrpc.pkl"][10:14]] + \
              [GLUE_TASKS["mmlu"].question(records["mmlu.pkl"][10])]
    words = ("Yes", "No", "positive", "negative")
    batched = label_word_nlls(model, tokenizer, prompts, words, batch_size=3)
    expected = torch.tensor([[reference_nll(model, tokenizer, p, w) for w in words] for p in prompts])
    assert torch.allclose(batched.float(), expected.float(), atol=1e-4)


def test_f1_is_the_weighted_f1_of_the_most_likely_label_word():
    tokenizer = bpe_tokenizer()
    model = gpt2(tokenizer)
    records = glue_records()
    for name, file in (("rte", "rte.pkl"), ("mmlu", "mmlu.pkl"), ("nli", "nli.pkl")):
        task, tests = GLUE_TASKS[name], records[file][10:14]
        nlls = torch.tensor([[reference_nll(model, tokenizer, task.question(e), w) for w in task.label_words]
                             for e in tests])
        predictions = [task.predictions[int(row.argmin())] for row in nlls]
        expected = f1_score([task.label(e) for e in tests], predictions, average="weighted")
        assert task_f1(model, tokenizer, task, tests) == pytest.approx(expected)


def test_runner_records_f1_per_task_every_k_batches(tmp_path, monkeypatch):
    tokenizer = toy_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)).eval()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    write_zsre(tmp_path)
    write_glue(tmp_path / "glue", count=13)
    monkeypatch.setenv("NULLSPACE_DATA_DIR", str(tmp_path))
    argv = ["--model", str(tmp_path / "model"), "--hparams", "gpt2-xl", "--layers", "0", "1", "--dataset", "zsre",
            "--edits", "4", "--batch", "1", "--every", "4", "--statistics-texts", "16", "--heldout-texts", "8",
            "--tokens-per-text", "32", "--cache-dir", str(tmp_path / "cache"), "--glue-dir", str(tmp_path / "glue"),
            "--glue-every", "2", "--out", str(tmp_path / "out.json"), "--glue-tests"]
    assert main([*argv, "3"]) == 0
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["glue_tests"] == 3 and results["glue_every"] == 2
    for method in ("MEMIT", "AlphaEdit"):
        glue = results["methods"][method]["glue_f1"]
        assert glue["edits"] == [0, 2, 4]  # before editing, then every 2 batches of 1
        assert sorted(glue) == sorted(["edits", *GLUE_TASKS])
        assert all(len(glue[t]) == 3 and all(0.0 <= f <= 1.0 for f in glue[t]) for t in GLUE_TASKS)
    with pytest.raises(ValueError, match="holds 13 records.*at most 3 tests"):  # refused before any edit
        main([*argv, "4", "--overwrite"])
