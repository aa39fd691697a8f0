"""A word-level tokenizer for the fact world, built with ``tokenizers`` and wrapped as a
``transformers.PreTrainedTokenizerFast``.

Every word of the world (names, objects, template words) is one token, and punctuation is split
off, so ``" Paris"`` and ``"Paris"`` are both the single token ``Paris`` and a person's name is
the subject's last token. Like GPT-2's tokenizer, it adds no special tokens to an encoding;
``<|endoftext|>`` separates documents during training and doubles as the padding token.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

__all__ = ["END_OF_TEXT", "UNKNOWN", "build_tokenizer"]

END_OF_TEXT = "<|endoftext|>"
UNKNOWN = "<|unk|>"


def build_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is the special tokens, punctuation and ``words``."""
    if not words:
        raise ValueError("words is empty: pass the world's vocabulary (World.vocabulary_words()).")
    vocab: dict[str, int] = {}
    for token in (END_OF_TEXT, UNKNOWN, ".", ",", "?", ":", "'", *words):
        vocab.setdefault(token, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNKNOWN))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                  pre_tokenizers.Punctuation()])
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=END_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=UNKNOWN,
        pad_token=END_OF_TEXT,
        clean_up_tokenization_spaces=True,
        model_max_length=128,
    )
