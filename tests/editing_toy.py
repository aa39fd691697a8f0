"""A tiny randomly initialised GPT-2, a word-level tokenizer and CounterFact-style requests for
the editing tests (no trained model needed)."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from nullspace.editing.requests import requests_from_counterfact
from nullspace.editing.statistics import collect_key_statistics

NAMES = ["Ava", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ida", "Jo", "Kai", "Lu"]
CITIES = ["Paris", "Rome", "Oslo", "Lima"]
WORDS = ["lives", "in", "The", "home", "of", "is", "a", "town", "Q", "Where", "does", "live", "A",
         "works", "as", "doctor", "chef", "and", "likes", "tea", "the", "city"]


def toy_tokenizer() -> PreTrainedTokenizerFast:
    vocab: dict[str, int] = {}
    for token in ("<|endoftext|>", "<|unk|>", ".", "?", ":", *NAMES, *CITIES, *WORDS):
        vocab.setdefault(token, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", unk_token="<|unk|>")


def toy_model(tokenizer: PreTrainedTokenizerFast, seed: int = 0, n_layer: int = 3) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=n_layer, n_head=2,
                        n_inner=64, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).eval()


def toy_records(count: int = 6) -> list[dict]:
    records = []
    for case_id, name in enumerate(NAMES[:count]):
        true, new = CITIES[case_id % 4], CITIES[(case_id + 1) % 4]
        others = [n for n in NAMES[count:]]
        records.append({
            "case_id": case_id,
            "requested_rewrite": {"prompt": "{} lives in", "subject": name, "target_new": {"str": new},
                                  "target_true": {"str": true}, "relation_id": "city"},
            "paraphrase_prompts": [f"The home town of {name} is", f"Q: Where does {name} live? A:"],
            "neighborhood_prompts": [f"{o} lives in" for o in others[:3]],
            "attribute_prompts": [f"{o} lives in" for o in others[3:5]],
            "generation_prompts": [f"{name} lives in", f"{name} works as a"],
        })
    return records


def toy_corpus() -> list[str]:
    return [f"{n} lives in {c}. {n} works as a doctor and likes tea." for n in NAMES for c in CITIES[:2]]


def toy_setup(statistics_layers: list[int]) -> tuple:
    """``(model, tokenizer, requests, {layer: C0})``: the toy model, its six requests and the key
    covariances of ``statistics_layers`` on the toy corpus."""
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    requests = requests_from_counterfact(toy_records(6))
    stats = collect_key_statistics(model, tokenizer, statistics_layers, toy_corpus())
    return model, tokenizer, requests, {layer: s.covariance for layer, s in stats.items()}
