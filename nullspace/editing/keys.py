"""Reading FFN keys at the subject's last token (AlphaEdit Eq. 2; ROME/MEMIT ``compute_ks``).

In a GPT-2 block the FFN is ``m = W_out σ(W_in γ(h))`` (AlphaEdit Eq. 1). Its output matrix
``W = W_out`` is ``transformer.h[l].mlp.c_proj``; the *key* ``k`` is the input of ``c_proj`` (after
the non-linearity) and the *value* is its output ``v = W k (+ bias)`` (Eq. 2). Locate-then-edit
methods read the key where the subject ends, and average it over several short context prefixes
so that the edit does not depend on what came before the subject (:mod:`nullspace.editing.contexts`
makes them as the official code does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nullspace.editing import architectures
from nullspace.editing.hparams import KEY_WEIGHTINGS
from nullspace.editing.prompts import (
    encode_right_padded,
    leading_special_ids,
    require_known_words,
    unknown_token_id,
)
from nullspace.validation import require_int

__all__ = ["compute_ks", "context_weights", "ffn_output_layer", "keys_at", "read_module", "subject_token_index"]


def ffn_output_layer(model: PreTrainedModel, layer: int) -> nn.Module:
    """The FFN output matrix ``W`` of block ``layer`` (GPT-2 ``c_proj``, GPT-J ``fc_out``, Llama
    ``down_proj``: :mod:`nullspace.editing.architectures`)."""
    return architectures.ffn_output(model, require_int(layer, "layer"))


def subject_token_index(tokenizer: PreTrainedTokenizerBase, prompt: str, subject: str) -> int:
    """Position of the subject's last token in ``prompt.format(subject)`` as the model reads it.

    ``prompt`` contains ``{}`` where the subject goes (the CounterFact convention). The index is
    the length of the tokenised text up to and including the subject, minus one, counting the
    tokens the tokenizer puts first (Llama 3's BOS), as the official ``repr_tools`` counts them
    (``len(tok.encode(prefix + subject)) - 1``).

    Raises:
        TypeError: ``prompt`` or ``subject`` is not a string.
        ValueError: the prompt has no or several ``{}``; the subject is empty; a word is unknown
            to the tokenizer.
    """
    if not isinstance(prompt, str) or not isinstance(subject, str):
        raise TypeError(f"prompt and subject must be strings, got {type(prompt).__name__} and "
                        f"{type(subject).__name__}.")
    if prompt.count("{}") != 1:
        raise ValueError(f"the prompt must contain exactly one '{{}}' for the subject, got {prompt!r}.")
    if not subject.strip():
        raise ValueError(f"the subject is empty (prompt {prompt!r}): give the name the prompt is about.")
    before = prompt[: prompt.index("{}")]
    ids = tokenizer(before + subject, add_special_tokens=False)["input_ids"]
    if unknown_token_id(tokenizer) in ids:
        require_known_words(tokenizer, [subject], "subject")
        require_known_words(tokenizer, [prompt], "prompt")
    if not ids:
        raise ValueError(f"the subject {subject!r} encodes to no token.")
    return len(leading_special_ids(tokenizer)) + len(ids) - 1


class _StopForward(Exception):
    """Raised by a hook once it holds what it was asked for, so that the rest of the forward pass
    is skipped (the official code's ``nethook.TraceDict(..., stop=True)``)."""


@torch.no_grad()
def read_module(model: PreTrainedModel, module: nn.Module, inputs: dict[str, torch.Tensor], *,
                read_input: bool = False) -> torch.Tensor:
    """The output of ``module`` (its first input, with ``read_input``) in a forward pass of
    ``model`` on ``inputs``; the layers after ``module`` are not run."""
    captured: list[torch.Tensor] = []

    def hook(_module, module_inputs, output):
        value = module_inputs[0] if read_input else (output[0] if isinstance(output, tuple) else output)
        captured.append(value.detach())
        raise _StopForward

    handle = module.register_forward_hook(hook)
    try:
        model(**inputs, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"the forward pass never reached {type(module).__name__}: is it part of the model?")
    return captured[0]


def keys_at(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, layer: int,
            texts: Sequence[str], positions: Sequence[int], batch_size: int = 256) -> torch.Tensor:
    """The keys (inputs of ``c_proj`` in block ``layer``) at one position per text,
    shape ``(len(texts), d_ff)``. Positions count tokens from the start of each text, whatever the
    tokenizer's padding side (batches are padded on the right here)."""
    if len(texts) != len(positions):
        raise ValueError(f"got {len(texts)} texts but {len(positions)} positions.")
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    module = ffn_output_layer(model, layer)
    device = next(model.parameters()).device
    rows = []
    for start in range(0, len(texts), batch_size):
        enc = encode_right_padded(tokenizer, texts[start:start + batch_size], device)
        index = torch.tensor(positions[start:start + batch_size], device=device)
        lengths = enc["attention_mask"].sum(1)
        if bool((index < 0).any() or (index >= lengths).any()):
            raise ValueError("a position lies outside its text: positions count tokens from the start of "
                             "each text (subject_token_index gives them).")
        keys = read_module(model, module, enc, read_input=True)
        rows.append(keys[torch.arange(len(index), device=device), index].float().cpu())
    return torch.cat(rows)


def context_weights(context_templates: Sequence[str], weighting: str = "grouped") -> torch.Tensor:
    """The weight of each context template in a request's averaged key.

    ``"grouped"`` is MEMIT's and AlphaEdit's ``compute_ks``: the official code passes the contexts
    as two groups, ``[["{}"], [the sampled prefixes]]``, averages within each group and then over
    the groups, so the bare prompt (the first template, which must be ``"{}"``) weighs ½ and the
    prefixed prompts share the other ½. ``"flat"`` is ROME's ``compute_u``: every template
    weighs the same. With one template both give it weight 1. Returns float32, summing to 1.
    """
    if weighting not in KEY_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {KEY_WEIGHTINGS}, got {weighting!r}.")
    count = len(context_templates)
    if count == 0:
        raise ValueError("context_templates is empty: pass at least ('{}',).")
    if weighting == "flat" or count == 1:
        return torch.full((count,), 1.0 / count)
    if context_templates[0] != "{}":
        raise ValueError(f"grouped weighting needs the bare prompt '{{}}' as the first context template "
                         f"(its own group, as in the official code), got {context_templates[0]!r}.")
    return torch.tensor([0.5] + [0.5 / (count - 1)] * (count - 1))


def compute_ks(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, layer: int,
               prompts: Sequence[str], subjects: Sequence[str],
               context_templates: Sequence[str] = ("{}",), weighting: str = "grouped") -> torch.Tensor:
    """One key per request: the key at the subject's last token, averaged over contexts.

    ``prompts[i]`` has ``{}`` for ``subjects[i]``; each context template has ``{}`` for the
    prompt (``"{}"`` is the prompt alone; ``"Kelric owns a dog. {}"`` puts a sentence before it),
    as in MEMIT's ``compute_ks``; the contexts are weighted by :func:`context_weights`
    (``"grouped"``: MEMIT/AlphaEdit, ``"flat"``: ROME). Returns ``(len(prompts), d_ff)`` in float32.
    The result does not depend on the tokenizer's padding side.

    Raises:
        ValueError: no prompts, mismatched lengths, a prompt or template without its ``{}``, or a
            word the tokenizer does not know (naming the argument and the words).
    """
    if isinstance(prompts, str) or isinstance(subjects, str):
        raise TypeError("prompts and subjects must be lists of strings (one per request), not a single string.")
    if len(prompts) != len(subjects):
        raise ValueError(f"got {len(prompts)} prompts but {len(subjects)} subjects.")
    if not prompts:
        raise ValueError("no prompts given: compute_ks needs at least one (prompt, subject) pair.")
    if isinstance(context_templates, str) or not context_templates:
        raise ValueError("context_templates must be a non-empty list of templates with '{}', e.g. ('{}',).")
    require_known_words(tokenizer, subjects, "subjects")
    require_known_words(tokenizer, prompts, "prompts")
    require_known_words(tokenizer, context_templates, "context_templates")
    weights = context_weights(context_templates, weighting)
    texts, positions = [], []
    for prompt, subject in zip(prompts, subjects):
        for context in context_templates:
            full_prompt = context.replace("{}", prompt, 1) if "{}" in context else None
            if full_prompt is None:
                raise ValueError(f"every context template needs a '{{}}' for the prompt, got {context!r}.")
            texts.append(full_prompt.format(subject))
            positions.append(subject_token_index(tokenizer, full_prompt, subject))
    keys = keys_at(model, tokenizer, layer, texts, positions)
    return torch.einsum("rcd,c->rd", keys.view(len(prompts), len(context_templates), -1), weights)
