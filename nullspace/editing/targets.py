"""Target vectors for an edit (ROME/MEMIT ``compute_z``; the ``V1`` of AlphaEdit Eq. 5).

An edit needs, for each request, the hidden state ``z`` that the last edited block should output
at the subject's last token so that the model says the new object. It is found by optimising a
vector ``δ`` added to that block's output, ``z = h + δ``, with Adam on

    −log p(new object | prompt, in every context)                        (the edit)
    + kl_factor · KL(p(· | "{subject} is a") ‖ its unedited value)       (keep the subject's essence)
    + v_weight_decay · ‖δ‖ / ‖h‖²                                        (keep δ small)

with ``‖δ‖`` clamped to ``clamp_norm_factor · ‖h‖`` after every step and an early stop once the
loss is below ``early_stop_loss`` (official GPT-2 XL values: 20 steps at lr 0.5, KL 0.0625,
weight decay 0.5, clamp 0.75; ROME: clamp 4). The rewriting NLL is the mean over every context
template, as in the official ``compute_z``.

Two choices follow the official code and have switches:

* where the KL term reads the essence prompt's prediction (``EditHyperParams.kl_position``): the
  official code reads the logits at the subject's last token of ``"{subject} is a"``
  (``"subject"``), not at its last token (``"last"``, the next word after "is a", which an
  earlier version of the course used; it moves target vectors by about a quarter);
* what ``h`` is (``at``): MEMIT and AlphaEdit add ``δ`` to the *block* output (the residual
  stream); ROME's ``compute_v`` adds it to the *MLP* output of its layer, so its clamp and
  weight decay are relative to ``‖m‖`` and its target ``z = m + δ`` is an MLP output.
  Adding ``δ`` to either changes the forward pass identically; only the reference differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nullspace.editing import architectures
from nullspace.editing.hparams import TARGET_REFERENCES, EditHyperParams
from nullspace.editing.keys import read_module, subject_token_index
from nullspace.editing.prompts import leading_special_ids, require_known_words, token_ids, with_leading_space
from nullspace.validation import require_int

__all__ = ["TargetVector", "adding_to_hidden_state", "compute_z", "compute_zs"]


@dataclass(frozen=True)
class TargetVector:
    """The result of :func:`compute_z` for one request.

    ``z = hidden + delta`` is the target output of block ``layer`` (or of its MLP, for
    ``at="mlp"``) at the subject's last token;
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


def _output_module(model: PreTrainedModel, layer: int, at: str) -> torch.nn.Module:
    if at not in TARGET_REFERENCES:
        raise ValueError(f"at must be one of {TARGET_REFERENCES}, got {at!r}.")
    return architectures.block(model, layer) if at == "block" else architectures.sublayer(model, "mlp", layer)


@contextmanager
def adding_to_hidden_state(model: PreTrainedModel, layer: int, positions: Sequence[int],
                           vector: torch.Tensor, at: str = "block") -> Iterator[None]:
    """Within the block, add ``vector`` (one vector for every row, or one row per row) to the
    output of block ``layer`` (``at="block"``) or of its MLP (``at="mlp"``) at ``positions[i]`` of
    row ``i``."""
    index = torch.as_tensor(list(positions))

    def hook(_module, _inputs, output):
        hidden = _block_output(output)
        rows = torch.arange(len(index), device=hidden.device)
        hidden = hidden.clone()
        hidden[rows, index.to(hidden.device)] = hidden[rows, index.to(hidden.device)] + vector.to(hidden.dtype)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = _output_module(model, layer, at).register_forward_hook(hook)
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
              hparams: EditHyperParams, context_templates: Sequence[str] = ("{}",), at: str = "block"
              ) -> TargetVector:
    """Optimise the target vector of one request (``prompt`` with ``{}``, ``subject``,
    ``target_new: {"str": ...}``, the CounterFact ``requested_rewrite``) at the output of block
    ``hparams.target_layer`` (``at="block"``, MEMIT's ``compute_z``) or of its MLP (``at="mlp"``,
    ROME's ``compute_v``)."""
    return compute_zs(model, tokenizer, [request], hparams, context_templates, at)[0]


@dataclass
class _Rows:
    """The token rows of a group of requests: ``n_rewrite`` rewriting rows then one KL row each."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    positions: torch.Tensor   # subject's last token, per row
    owners: torch.Tensor      # the request of each row
    labels: torch.Tensor      # the new object's tokens, -100 elsewhere (rewriting rows only)
    kl_rows: torch.Tensor     # the KL row of each request
    kl_slots: torch.Tensor    # where the KL row's prediction is read
    first_rows: torch.Tensor  # each request's first rewriting row (the clean hidden state)


def _request_rows(tokenizer, requests: Sequence[dict], hparams: EditHyperParams, context_templates: Sequence[str],
                  device: torch.device) -> _Rows:
    rows, positions, owners, label_rows = [], [], [], []
    leading = leading_special_ids(tokenizer)  # Llama 3's BOS opens every row, as in the official code
    kl_rows, kl_slots, first_rows = [], [], []
    for owner, request in enumerate(requests):
        new_object = _check_request(request, hparams)
        subject = request["subject"]
        require_known_words(tokenizer, [subject], 'request["subject"]')
        require_known_words(tokenizer, [request["prompt"]], 'request["prompt"]')
        (target_ids,) = token_ids(tokenizer, [new_object], 'request["target_new"]["str"]')
        if not target_ids:
            raise ValueError(f"the new object {new_object!r} encodes to no token.")
        first_rows.append(len(rows))
        for context in context_templates:
            prompt = context.replace("{}", request["prompt"], 1)
            prompt_ids = leading + tokenizer(prompt.format(subject), add_special_tokens=False)["input_ids"]
            row = prompt_ids + target_ids[:-1]
            labels = [-100] * len(row)
            labels[len(prompt_ids) - 1:] = target_ids  # the logits at slot j predict token j + 1
            rows.append(row)
            label_rows.append(labels)
            positions.append(subject_token_index(tokenizer, prompt, subject))
            owners.append(owner)
        kl_ids = leading + tokenizer(hparams.kl_prompt.format(subject), add_special_tokens=False)["input_ids"]
        kl_position = subject_token_index(tokenizer, hparams.kl_prompt, subject)
        kl_rows.append(len(rows))
        kl_slots.append(kl_position if hparams.kl_position == "subject" else len(kl_ids) - 1)
        rows.append(kl_ids)
        label_rows.append([-100] * len(kl_ids))
        positions.append(kl_position)
        owners.append(owner)
    input_ids, attention_mask = _pad(rows, tokenizer.pad_token_id or 0)
    labels, _ = _pad(label_rows, -100)

    def tensor(values: list[int]) -> torch.Tensor:
        return torch.tensor(values, device=device)

    return _Rows(input_ids.to(device), attention_mask.to(device), tensor(positions), tensor(owners),
                 labels.to(device), tensor(kl_rows), tensor(kl_slots), tensor(first_rows))


def compute_zs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, requests: Sequence[dict],
               hparams: EditHyperParams, context_templates: Sequence[str] = ("{}",), at: str = "block",
               chunk: int = 32) -> list[TargetVector]:
    """The target vectors of several requests, each exactly as :func:`compute_z` finds it alone.

    Every request has its own ``δ``; their losses are summed, and no ``δ`` reaches another
    request's rows, so each gradient is that request's own. Adam acts elementwise, the clamp and
    the early stop are applied per request, and a request that stops is frozen: the result equals
    one-at-a-time optimisation (to round-off) at a fraction of the cost on small models.
    ``chunk`` requests are optimised together (memory grows with it).
    """
    if isinstance(requests, Mapping) or not requests:
        raise ValueError("requests must be a non-empty list of requests (CounterFact requested_rewrite dicts).")
    chunk = require_int(chunk, "chunk", minimum=1)
    if at not in TARGET_REFERENCES:
        raise ValueError(f"at must be one of {TARGET_REFERENCES}, got {at!r}.")
    require_known_words(tokenizer, list(context_templates), "context_templates")
    require_known_words(tokenizer, [hparams.kl_prompt], "hparams.kl_prompt")
    results: list[TargetVector] = []
    for start in range(0, len(requests), chunk):
        results += _optimise_group(model, tokenizer, list(requests[start:start + chunk]), hparams,
                                   context_templates, at)
    return results


def _optimise_group(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, requests: list[dict],
                    hparams: EditHyperParams, context_templates: Sequence[str], at: str) -> list[TargetVector]:
    device = next(model.parameters()).device
    layer = hparams.target_layer
    rows = _request_rows(tokenizer, requests, hparams, context_templates, device)
    count = len(requests)
    n_rewrite = torch.bincount(rows.owners, minlength=count) - 1
    # every row's block output: δ is added there, so the blocks up to ``layer`` run only once
    inputs = {"input_ids": rows.input_ids, "attention_mask": rows.attention_mask}
    block_outputs = read_module(model, architectures.block(model, layer), inputs).float()
    reference = block_outputs if at == "block" else read_module(model, _output_module(model, layer, at), inputs)
    hidden = reference[rows.first_rows, rows.positions[rows.first_rows]].float()
    hidden_norm = hidden.norm(dim=1)
    max_norm = hparams.clamp_norm_factor * hidden_norm
    # the logits that are read: the new object's tokens on rewriting rows, the KL slot on KL rows
    score_rows, score_slots = (rows.labels != -100).nonzero(as_tuple=True)
    score_labels = rows.labels[score_rows, score_slots]
    tokens_per_row = torch.bincount(score_rows, minlength=len(rows.owners)).clamp_min(1)
    delta = torch.zeros_like(hidden, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=hparams.v_lr)
    done = torch.zeros(count, dtype=torch.bool, device=device)
    final_nll = torch.zeros(count, device=device)
    steps = torch.zeros(count, dtype=torch.long, device=device)
    kl_reference = None
    grad_flags = [p.requires_grad for p in model.parameters()]
    for param in model.parameters():
        param.requires_grad_(False)
    try:
        for step in range(1, hparams.v_num_grad_steps + 1):
            # only the rows of requests still optimising take part (a stopped request is frozen)
            active = (~done).nonzero().squeeze(1)
            keep = ~done[rows.owners]
            kept = keep.nonzero().squeeze(1)
            where = keep.cumsum(0) - 1  # a row's place among the kept rows
            start = block_outputs[kept].clone()
            start[torch.arange(len(kept), device=device), rows.positions[kept]] += delta[rows.owners[kept]]
            final = _final_hidden_states(model, layer, start, {k: v[kept] for k, v in inputs.items()})
            scored = keep[score_rows]
            kl_rows = rows.kl_rows[active]
            read = torch.cat([final[where[score_rows[scored]], score_slots[scored]],
                              final[where[kl_rows], rows.kl_slots[active]]])
            log_probs = F.log_softmax(model.lm_head(read).float(), dim=-1)
            n_scored = int(scored.sum())
            token_logp = log_probs[:n_scored].gather(1, score_labels[scored][:, None]).squeeze(1)
            row_nll = torch.zeros(len(rows.owners), device=device).index_add(0, score_rows[scored], -token_logp)
            row_nll = row_nll / tokens_per_row  # the official mean over the object's tokens
            nll = torch.zeros(count, device=device).index_add(0, rows.owners, row_nll)[active] / n_rewrite[active]
            kl_log_probs = log_probs[n_scored:]
            if kl_reference is None:
                kl_reference = kl_log_probs.detach()
            # KL(current ‖ unedited) per request, as the official F.kl_div(unedited, current, log_target=True)
            kl = (kl_log_probs.exp() * (kl_log_probs - kl_reference[active])).sum(1)
            decay = hparams.v_weight_decay * delta[active].norm(dim=1) / hidden_norm[active] ** 2
            loss = nll + hparams.kl_factor * kl + decay
            stopping = (loss.detach() < hparams.early_stop_loss) | (step == hparams.v_num_grad_steps)
            final_nll[active[stopping]] = nll.detach()[stopping]
            steps[active[stopping]] = step
            done[active[stopping]] = True
            if bool(done.all()):
                break
            frozen = delta.detach()[done].clone()
            optimizer.zero_grad()
            loss[~stopping].sum().backward()
            optimizer.step()
            with torch.no_grad():
                delta[done] = frozen
                norms = delta.norm(dim=1)
                over = ~done & (norms > max_norm)
                delta[over] *= (max_norm[over] / norms[over])[:, None]
    finally:
        for param, flag in zip(model.parameters(), grad_flags):
            param.requires_grad_(flag)
    delta = delta.detach()
    return [TargetVector(z=hidden[i] + delta[i], delta=delta[i], hidden=hidden[i], layer=layer,
                         nll=float(final_nll[i]), steps=int(steps[i])) for i in range(count)]


def _final_hidden_states(model: PreTrainedModel, layer: int, hidden: torch.Tensor,
                         inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The final-norm output of the blocks after ``layer`` from ``hidden``, the output of block
    ``layer`` on ``inputs`` (rows right-padded: a causal mask keeps every real token from seeing
    the padding). GPT-2 runs its later blocks directly; other architectures (rotary positions)
    run the whole model with block ``layer``'s output replaced by ``hidden``."""
    if architectures.architecture_of(model).family != "gpt2":
        def replace_output(_module, _inputs, output):
            return (hidden.to(_block_output(output).dtype), *output[1:]) if isinstance(output, tuple) else hidden

        handle = architectures.block(model, layer).register_forward_hook(replace_output)
        try:
            return model(**inputs, use_cache=False, output_hidden_states=True).hidden_states[-1]
        finally:
            handle.remove()
    length = hidden.shape[1]
    causal = torch.full((length, length), float("-inf"), device=hidden.device, dtype=hidden.dtype).triu(1)
    for block in model.transformer.h[layer + 1:]:
        output = block(hidden, attention_mask=causal[None, None])
        hidden = output[0] if isinstance(output, tuple) else output
    return model.transformer.ln_f(hidden)
