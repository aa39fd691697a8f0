"""Sequential editing: batches applied one after another to the same model.

Every editor

* restores, on :meth:`reset`, the weights *as loaded* of the matrices it may change (one copy per
  layer, shared by every editor of the model: :func:`~nullspace.editing.models.weights_as_loaded`),
  so an experiment never starts from another editor's edits (an edit never touches the checkpoint
  on disk: models are loaded into memory);
* keeps the explicit cache of earlier edited keys ``Kp Kpᵀ`` per layer (AlphaEdit Eq. 12, 15),
  which :meth:`reset` empties — a cache leaking from one experiment into the next was a reported
  bug of a popular editing framework, so a new experiment must start with ``reset()``.

:class:`KeyValueEditor` implements the locate-then-edit loop shared by MEMIT and AlphaEdit:
target vectors ``z`` for the batch, the residual spread over the layers in order
(:func:`~nullspace.editing.spread.spread_over_layers`), and, as in the official code, after the
batch the keys are re-extracted from the edited model and ``K Kᵀ`` joins the cache.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from nullspace.capture import weight_as_matrix
from nullspace.editing import architectures
from nullspace.editing.hparams import TARGET_REFERENCES, EditHyperParams
from nullspace.editing.keys import compute_ks, read_module, subject_token_index
from nullspace.editing.models import weights_as_loaded
from nullspace.editing.prompts import encode_right_padded
from nullspace.editing.requests import EditRequest
from nullspace.editing.spread import ffn_output, spread_over_layers
from nullspace.editing.targets import compute_zs
from nullspace.validation import mark_positive_semidefinite, require_increasing_layers

__all__ = [
    "KeyValueEditor",
    "SequentialEditor",
    "TargetFunction",
    "TargetOptimizer",
    "check_batch",
    "check_context_templates",
    "request_keys",
    "require_layers",
    "subject_outputs",
]

# (model, tokenizer, requests, layer) -> z, one row per request, (u, d_model), optimised at `layer`'s output
TargetFunction = Callable[[nn.Module, object, Sequence[EditRequest], int], torch.Tensor]


@dataclass
class TargetOptimizer:
    """The target vectors ``z`` of a batch by :func:`~nullspace.editing.targets.compute_zs` (the
    batch's requests optimised together, each exactly as alone), at any layer (ROME asks for its
    own layer); keeps each request's final NLL
    of the new object in :attr:`nll_history`, which caps what any weight solve can reach.
    ``at`` is ``"block"`` (MEMIT's ``compute_z``) or ``"mlp"`` (ROME's ``compute_v``)."""

    hparams: EditHyperParams
    context_templates: tuple[str, ...] = ("{}",)
    at: str = "block"
    nll_history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.hparams, EditHyperParams):
            raise TypeError(f"hparams must be an EditHyperParams (hparams_for(model_name)), got "
                            f"{type(self.hparams).__name__}.")
        self.context_templates = check_context_templates(self.context_templates)

    def __call__(self, model: nn.Module, tokenizer, requests: Sequence[EditRequest], layer: int) -> torch.Tensor:
        hparams = self.hparams if layer == self.hparams.target_layer else replace(self.hparams, layers=(layer,))
        targets = compute_zs(model, tokenizer, [{"prompt": r.prompt, "subject": r.subject,
                                                 "target_new": {"str": r.target_new}} for r in requests],
                             hparams, self.context_templates, at=self.at)
        self.nll_history.extend(t.nll for t in targets)
        return torch.stack([t.z for t in targets])


@torch.no_grad()
def subject_outputs(model: nn.Module, tokenizer, layer: int, requests: Sequence[EditRequest], at: str = "block"
                    ) -> torch.Tensor:
    """The output of block ``layer`` (the residual stream; ``at="mlp"``: of its MLP) at each
    request's subject's last token in its bare edit prompt, ``(u, d_model)``; the ``h_L`` of the
    residual ``z − h_L`` (the official code reads it at the bare prompt too)."""
    if at not in TARGET_REFERENCES:
        raise ValueError(f"at must be one of {TARGET_REFERENCES}, got {at!r}.")
    device = next(model.parameters()).device
    module = architectures.block(model, layer) if at == "block" else architectures.sublayer(model, "mlp", layer)
    outputs = read_module(model, module, encode_right_padded(tokenizer, [r.edit_prompt for r in requests], device,
                                                             argument="edit prompts"))
    positions = torch.tensor([subject_token_index(tokenizer, r.prompt, r.subject) for r in requests], device=device)
    return outputs[torch.arange(len(requests), device=device), positions].float()


def request_keys(model: nn.Module, tokenizer, layer: int, requests: Sequence[EditRequest],
                 context_templates: Sequence[str], weighting: str = "grouped") -> torch.Tensor:
    """The keys of ``requests`` at ``layer``, averaged over ``context_templates`` (compute_ks)."""
    return compute_ks(model, tokenizer, layer, [r.prompt for r in requests], [r.subject for r in requests],
                      context_templates, weighting)


def check_context_templates(context_templates: Sequence[str]) -> tuple[str, ...]:
    """``context_templates`` as a tuple after checking each holds one ``{}`` for the prompt."""
    if isinstance(context_templates, str) or not context_templates:
        raise ValueError("context_templates must be a non-empty list of templates with one '{}' for the prompt, "
                         f"such as ('{{}}',), got {context_templates!r}.")
    for template in context_templates:
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"every context template needs one '{{}}' for the prompt, got {template!r}.")
    return tuple(context_templates)


def check_batch(requests: Sequence[EditRequest]) -> list[EditRequest]:
    """``requests`` as a list after checking it is a non-empty list of :class:`EditRequest` with no
    two contradictory requests (one fact, the same subject and relation or prompt, rewritten to two
    different objects: only one could win, silently)."""
    if isinstance(requests, EditRequest):
        raise TypeError("edit() takes a batch (a list) of requests: wrap the single request in a list.")
    requests = list(requests)
    if not requests:
        raise ValueError("the batch is empty: give at least one EditRequest.")
    for index, request in enumerate(requests):
        if not isinstance(request, EditRequest):
            raise TypeError(f"requests[{index}] is a {type(request).__name__}, not an EditRequest: build requests "
                            "with nullspace.editing.requests.requests_from_counterfact(records).")
    seen: dict[tuple[str, str], EditRequest] = {}
    for request in requests:
        facts = [("prompt", request.subject, request.prompt)]
        if request.relation_id:
            facts.append(("relation", request.subject, request.relation_id))
        for fact in facts:
            earlier = seen.setdefault(fact, request)
            if earlier.target_new.strip() != request.target_new.strip():
                raise ValueError(
                    f"the batch holds contradictory requests for one fact: cases {earlier.case_id} and "
                    f"{request.case_id} both rewrite {request.subject!r} ({fact[0]} {fact[2]!r}), to "
                    f"{earlier.target_new!r} and to {request.target_new!r}; only one could win. Keep one of them, "
                    "or edit them in separate batches (a later batch re-edits the fact).")
    return requests


def require_layers(per_layer: Mapping[int, object], layers: Sequence[int], what: str, how: str) -> None:
    """Raise unless ``per_layer`` has an entry for every layer in ``layers`` (``how``: the fix)."""
    missing = [layer for layer in layers if layer not in per_layer]
    if missing:
        raise ValueError(f"no {what} for layers {missing}; {how}.")


class SequentialEditor(ABC):
    """Edits batches of requests in sequence; restores the unedited weights on :meth:`reset`."""

    name = "editor"

    def __init__(self, model: nn.Module, layers: Sequence[int]) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a GPT-2 torch model (load_model), got {type(model).__name__}.")
        self.model = model
        self.layers = require_increasing_layers(layers, "layers")
        # the weights as loaded (not as they are now: another editor may have left its edits)
        self._unedited = weights_as_loaded(model, self.layers)
        self.edited_covariance: dict[int, torch.Tensor] = {}
        self.edits_done = 0
        self.batch_seconds: list[float] = []

    @torch.no_grad()
    def reset(self) -> None:
        """Restore the unedited weights and empty the cache of edited keys (a fresh experiment)."""
        for layer, weight in self._unedited.items():
            weight_as_matrix(ffn_output(self.model, layer)).copy_(weight)
        self.edited_covariance = {}
        self.edits_done = 0
        self.batch_seconds = []

    def key_dim(self, layer: int) -> int:
        """The key dimension ``d_ff`` of ``layer``'s FFN output matrix."""
        return int(self._unedited[layer].shape[1])

    def weight_change(self) -> dict[int, float]:
        """``‖W − W_unedited‖_F`` per edited layer, against the weights as loaded."""
        return {layer: float(torch.linalg.norm(weight_as_matrix(ffn_output(self.model, layer)).detach().float()
                                               - weight.float()))
                for layer, weight in self._unedited.items()}

    def edit(self, requests: Sequence[EditRequest]) -> None:
        """Apply one batch of requests (timed into :attr:`batch_seconds`).

        Raises:
            TypeError: ``requests`` is not a list of :class:`EditRequest`.
            ValueError: the batch is empty or holds contradictory requests for one fact.
        """
        requests = check_batch(requests)
        start = time.perf_counter()
        self._edit_batch(requests)
        self.batch_seconds.append(time.perf_counter() - start)
        self.edits_done += len(requests)

    @abstractmethod
    def _edit_batch(self, requests: list[EditRequest]) -> None:
        ...


class KeyValueEditor(SequentialEditor):
    """MEMIT-style editing of FFN output matrices; subclasses give the per-layer closed form.

    Keys are averaged over ``context_templates`` with ``key_weighting`` (``"grouped"``: the
    official ½ bare prompt, ½ the prefixed ones; see :func:`~nullspace.editing.keys.context_weights`).
    Subclasses that do not use the cache of edited keys set :attr:`keeps_edited_keys` to False.
    """

    keeps_edited_keys = True

    def __init__(self, model: nn.Module, tokenizer, layers: Sequence[int], targets: TargetFunction, *,
                 context_templates: Sequence[str] = ("{}",), key_weighting: str = "grouped") -> None:
        super().__init__(model, layers)
        if not callable(targets):
            raise TypeError(f"targets must be a function (model, tokenizer, requests, layer) -> z, such as "
                            f"TargetOptimizer(hparams), got {type(targets).__name__}.")
        self.tokenizer = tokenizer
        self.targets = targets
        self.context_templates = check_context_templates(context_templates)
        self.key_weighting = key_weighting

    def keys(self, layer: int, requests: Sequence[EditRequest]) -> torch.Tensor:
        """The batch's keys at ``layer`` from the model as it is now."""
        return request_keys(self.model, self.tokenizer, layer, requests, self.context_templates, self.key_weighting)

    @abstractmethod
    def solve(self, layer: int, keys: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        """``Δ`` for ``layer`` from the batch's keys ``(u, d_ff)`` and residuals ``(u, d_model)``."""

    def remember_keys(self, layer: int, keys: torch.Tensor) -> None:
        """Add ``K Kᵀ`` of an edited batch to the cache ``Kp Kpᵀ`` of ``layer``."""
        k = keys.to(torch.float64)
        moment = k.T @ k
        # a sum of Gram matrices KᵀK: positive semi-definite by construction, no need to check it again
        self.edited_covariance[layer] = mark_positive_semidefinite(self.edited_covariance.get(layer, 0) + moment)

    def _edit_batch(self, requests: list[EditRequest]) -> None:
        target_layer = self.layers[-1]
        z = self.targets(self.model, self.tokenizer, requests, target_layer)
        spread_over_layers(
            self.model, self.layers, z,
            keys_at=lambda layer: self.keys(layer, requests),
            outputs_now=lambda: subject_outputs(self.model, self.tokenizer, target_layer, requests),
            solve=self.solve,
        )
        if self.keeps_edited_keys:
            for layer in self.layers:  # official code: keys re-extracted from the edited model
                self.remember_keys(layer, self.keys(layer, requests))
