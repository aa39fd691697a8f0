"""Target vectors for an edit (ROME/MEMIT ``compute_z``; the ``V1`` of AlphaEdit Eq. 5).

An edit needs, for each request, the hidden state ``z`` that the last edited block should output
at the subject's last token so that the model says the new object. It is found by optimising a
vector ``δ`` added to that block's output, ``z = h + δ``, with Adam on

    −log p(new object | prompt, in every context)                        (the edit)
    + kl_factor · KL(p(· | "{subject} is a") ‖ its unedited value)       (keep the subject's essence)
    + v_weight_decay · ‖δ‖ / ‖h‖²                                        (keep δ small)

with ``‖δ‖`` clamped to ``clamp_norm_factor · ‖h‖`` after every step and an early stop once the
loss is below ``early_stop_loss`` (REFERENCE values: GPT-2 XL 20 steps at lr 0.5, KL 0.0625,
weight decay 0.5, clamp 0.75). Departure from the official code, stated: the KL term reads the
prediction at the last token of the essence prompt (the next word after "is a"), where the
official code reads the logits at the subject's position.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nullspace.editing import architectures
from nullspace.editing.hparams import EditHyperParams
from nullspace.editing.keys import subject_token_index
from nullspace.editing.prompts import require_known_words, token_ids, with_leading_space

__all__ = ["TargetVector", "adding_to_hidden_state", "compute_z"]


@dataclass(frozen=True)
class TargetVector:
    """The result of :func:`compute_z` for one request.

    ``z = hidden + delta`` is the target output of block ``layer`` at the subject's last token;
    ``nll`` is the mean negative log-likelihood of the new object over the rewriting prompts with
    ``delta`` added; ``steps`` counts the loss evaluations.
    """

    z: torch.Tensor
    delta: torch.Tensor
    hidden: torch.Tensor
    layer: int
    nll: float
    steps: int

    @property
    def norm_ratio(self) -> float:
        """``‖δ‖ / ‖h‖``, to compare with the clamp factor."""
        return float(self.delta.detach().norm() / self.hidden.detach().norm())


def _block_output(output: torch.Tensor | tuple) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@contextmanager
def adding_to_hidden_state(model: PreTrainedModel, layer: int, positions: Sequence[int],
                           vector: torch.Tensor) -> Iterator[None]:
    """Within the block, add ``vector`` to block ``layer``'s output at ``positions[i]`` of row ``i``."""
    index = torch.as_tensor(list(positions))

    def hook(_module, _inputs, output):
        hidden = _block_output(output)
        rows = torch.arange(len(index), device=hidden.device)
        hidden = hidden.clone()
        hidden[rows, index.to(hidden.device)] = hidden[rows, index.to(hidden.device)] + vector.to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = architectures.block(model, layer).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def _check_request(request: Mapping, hparams: EditHyperParams) -> str:
    """The request's new object with its leading space, after checking the request's fields."""
    if not isinstance(request, Mapping):
        raise TypeError(f"request must be a dict in the CounterFact requested_rewrite schema "
                        f"(prompt, subject, target_new), got {type(request).__name__}.")
    if not isinstance(hparams, EditHyperParams):
        raise TypeError(f"hparams must be an EditHyperParams (nullspace.editing.hparams.hparams_for(model_name)), "
                        f"got {type(hparams).__name__}.")
    for key in ("prompt", "subject", "target_new"):
        if key not in request:
            raise KeyError(f"the request needs '{key}' (a CounterFact requested_rewrite); got {sorted(request)}.")
    new = request["target_new"]
    if not isinstance(new, Mapping) or "str" not in new:
        raise TypeError(f'request["target_new"] must be {{"str": object}} (the CounterFact schema), got {new!r}.')
    new_object = with_leading_space(new["str"], 'request["target_new"]["str"]')
    true = request.get("target_true")
    true_object = true.get("str") if isinstance(true, Mapping) else true
    if isinstance(true_object, str) and true_object.strip() == new_object.strip():
        raise ValueError(f"the new object equals the true object ({new_object.strip()!r}): an edit must change "
                         "the object. Pick a different target_new.")
    return new_object


def compute_z(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, request: dict,
              hparams: EditHyperParams, context_templates: Sequence[str] = ("{}",)) -> TargetVector:
    """Optimise the target vector of one request (``prompt`` with ``{}``, ``subject``,
    ``target_new: {"str": ...}``, the CounterFact ``requested_rewrite``).

    The new object gets one leading space (added only when missing, the official convention).

    Raises:
        TypeError: ``request`` is not a mapping or ``hparams`` not an :class:`EditHyperParams`.
        KeyError: a field of the request is missing.
        ValueError: the new object is empty or equals ``target_true``; a word is unknown to the tokenizer.
    """
    new_object = _check_request(request, hparams)
    subject, layer = request["subject"], hparams.target_layer
    require_known_words(tokenizer, [subject], 'request["subject"]')
    require_known_words(tokenizer, [request["prompt"]], 'request["prompt"]')
    require_known_words(tokenizer, list(context_templates), "context_templates")
    require_known_words(tokenizer, [hparams.kl_prompt], "hparams.kl_prompt")
    (target_ids,) = token_ids(tokenizer, [new_object], 'request["target_new"]["str"]')
    device = next(model.parameters()).device

    rows, positions, answer_slots = [], [], []
    for context in context_templates:
        prompt = context.replace("{}", request["prompt"], 1)
        prompt_ids = tokenizer(prompt.format(subject), add_special_tokens=False)["input_ids"]
        rows.append(prompt_ids + target_ids[:-1])
        positions.append(subject_token_index(tokenizer, prompt, subject))
        answer_slots.append(len(prompt_ids) - 1)
    kl_ids = tokenizer(hparams.kl_prompt.format(subject), add_special_tokens=False)["input_ids"]
    rows.append(kl_ids)
    positions.append(subject_token_index(tokenizer, hparams.kl_prompt, subject))
    input_ids, attention_mask = _pad(rows, tokenizer.pad_token_id or 0)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    n_rewrite = len(context_templates)
    targets = torch.tensor(target_ids, device=device)
    slots = torch.tensor(answer_slots, device=device)[:, None] + torch.arange(len(target_ids), device=device)

    clean: list[torch.Tensor] = []

    def record(_module, _inputs, output) -> None:
        clean.append(_block_output(output)[0, positions[0]].detach().clone())

    handle = architectures.block(model, layer).register_forward_hook(record)
    try:
        with torch.no_grad():
            model(input_ids=input_ids[:1], attention_mask=attention_mask[:1])
    finally:
        handle.remove()
    hidden = clean[0].float()
    delta = torch.zeros_like(hidden, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=hparams.v_lr)
    max_norm = hparams.clamp_norm_factor * hidden.norm()
    kl_reference = None
    grad_flags = [p.requires_grad for p in model.parameters()]
    for param in model.parameters():
        param.requires_grad_(False)
    try:
        for step in range(1, hparams.v_num_grad_steps + 1):
            with adding_to_hidden_state(model, layer, positions, delta):
                logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
            log_probs = F.log_softmax(logits[:n_rewrite], dim=-1)
            picked = log_probs[torch.arange(n_rewrite, device=device)[:, None], slots, targets[None, :]]
            nll = -picked.mean(1).mean()
            kl_log_probs = F.log_softmax(logits[n_rewrite, len(kl_ids) - 1], dim=-1)
            if kl_reference is None:
                kl_reference = kl_log_probs.detach()
            kl = F.kl_div(kl_reference, kl_log_probs, log_target=True, reduction="sum")
            loss = nll + hparams.kl_factor * kl + hparams.v_weight_decay * delta.norm() / hidden.norm() ** 2
            if loss.item() < hparams.early_stop_loss or step == hparams.v_num_grad_steps:
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                if delta.norm() > max_norm:
                    delta.mul_(max_norm / delta.norm())
    finally:
        for param, flag in zip(model.parameters(), grad_flags):
            param.requires_grad_(flag)
    delta = delta.detach()
    return TargetVector(z=hidden + delta, delta=delta, hidden=hidden, layer=layer, nll=float(nll.detach()), steps=step)
