"""Tiny files in the official GLUE-evaluation formats, and a byte-level BPE tokenizer trained
offline on their text (optionally prepending a BOS token, as Llama 3's does)."""

from __future__ import annotations

import pickle
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SENTENCES = ["the film is a joy to watch", "a dull and tired story", "Ava lives in Paris", "the cat sat on the mat",
             "Bo works as a doctor", "it rains in Oslo today", "a bright and warm day", "the plot makes no sense"]


def glue_records(count: int = 14) -> dict[str, list[dict]]:
    """``count`` records per task, in each official file's schema, labels alternating as the
    official class-balanced subsets."""
    def pair(i: int) -> tuple[str, str]:
        return SENTENCES[i % len(SENTENCES)], SENTENCES[(i + 3) % len(SENTENCES)]

    return {
        "sst2.pkl": [{"sentence": pair(i)[0], "label": i % 2, "idx": i} for i in range(count)],
        "mrpc.pkl": [{"sentence1": pair(i)[0], "sentence2": pair(i)[1], "label": i % 2, "idx": i}
                     for i in range(count)],
        "cola.pkl": [{"sentence": pair(i)[1], "label": i % 2, "idx": i} for i in range(count)],
        "rte.pkl": [{"sentence1": pair(i)[0], "sentence2": pair(i)[1], "label": i % 2, "idx": i} for i in range(count)],
        "mmlu.pkl": [{"question": f"Which is true of {pair(i)[0]}?", "subject": "toy",
                      "choices": [pair(i)[0], pair(i)[1], pair(i + 1)[0], pair(i + 2)[0]], "answer": i % 4}
                     for i in range(count)],
        "nli.pkl": [{"index": str(i), "sentence1": pair(i)[0], "sentence2": pair(i)[1],
                     "label": "entailment" if i % 2 else "not_entailment"} for i in range(count)],
    }


def write_glue(folder: Path, count: int = 14) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in glue_records(count).items():
        (folder / name).write_bytes(pickle.dumps(records))
    return folder


def bpe_tokenizer(bos: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2's scheme) trained on the toy texts; with ``bos`` a post-processor
    prepends ``<s>`` to every encoding, as Llama 3's tokenizer prepends ``<|begin_of_text|>``."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    texts = SENTENCES + ["Review : Sentiment : positive negative",
                         "Answer: Yes No True or False? answer: (A) (B) (C) (D)",
                         "Question: Which is true of entails the question: linguistically acceptable paraphrases"]
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts * 5, trainer)
    if bos:
        core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                            special_tokens=[("<s>", core.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>")
