"""Next-token predictions on prompts, and the fact-recall score built on them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nullspace.editing.prompts import encode_right_padded, token_ids, with_leading_space
from nullspace.validation import require_int

__all__ = ["next_token_logits", "object_token_id", "top1_accuracy"]


def object_token_id(tokenizer: PreTrainedTokenizerBase, obj: str) -> int:
    """The id of the first token of ``" " + obj`` (the convention of CounterFact evaluation: the
    space is added only when missing); unknown words are refused."""
    (ids,) = token_ids(tokenizer, [with_leading_space(obj, "obj")], "obj")
    if not ids:
        raise ValueError(f"the object {obj!r} encodes to no token.")
    return ids[0]


@torch.no_grad()
def next_token_logits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Logits of the token after each prompt, shape ``(len(prompts), vocab)``.

    Prompts are right-padded here whatever the tokenizer's padding side, so position ids stay
    those of an unpadded prompt (GPT-2 has absolute position embeddings), and the logits are read
    at each prompt's last real token.
    """
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(prompts), batch_size):
        enc = encode_right_padded(tokenizer, prompts[start:start + batch_size], device, argument="prompts")
        if bool((enc["attention_mask"].sum(1) == 0).any()):
            raise ValueError("a prompt encodes to no token: give non-empty prompts.")
        logits = model(**enc, use_cache=False).logits
        last = enc["attention_mask"].sum(1) - 1
        rows.append(logits[torch.arange(len(last), device=device), last].float().cpu())
    return torch.cat(rows) if rows else torch.empty(0, model.config.vocab_size)


def top1_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                  prompts: Sequence[str], objects: Sequence[str]) -> float:
    """Share of prompts whose most likely next token is the object's first token."""
    if len(prompts) != len(objects):
        raise ValueError(f"got {len(prompts)} prompts but {len(objects)} objects.")
    if not prompts:
        raise ValueError("no prompts given.")
    predicted = next_token_logits(model, tokenizer, prompts).argmax(-1)
    expected = torch.tensor([object_token_id(tokenizer, o) for o in objects])
    return float((predicted == expected).float().mean())
