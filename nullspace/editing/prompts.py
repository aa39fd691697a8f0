"""Tokenising prompts followed by an object, with labels that score the object only."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["target_token_batch"]


def target_token_batch(tokenizer, prompts: Sequence[str], targets: Sequence[str], device: torch.device
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tokenised ``prompt + " " + target`` texts and labels that score only the target's tokens
    (``-100`` elsewhere), right-padded."""
    texts, prompt_lengths = [], []
    for prompt, target in zip(prompts, targets, strict=True):
        prompt_lengths.append(len(tokenizer(prompt, add_special_tokens=False)["input_ids"]))
        texts.append(f"{prompt} {target}")
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    for row, length in enumerate(prompt_lengths):
        labels[row, :length] = -100
    return {k: v.to(device) for k, v in enc.items()}, labels.to(device)
