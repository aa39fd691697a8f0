"""Sequential editing: batches applied one after another to the same model.

Every editor

* keeps a copy of the unedited weights of the matrices it may change, so :meth:`reset` restores
  the model exactly (an edit never touches the checkpoint on disk: models are loaded into memory);
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
from nullspace.editing.hparams import TARGET_REFERENCES, EditHyperParams
from nullspace.editing.keys import compute_ks, read_module, subject_token_index
from nullspace.editing.requests import EditRequest
from nullspace.editing.spread import ffn_output, spread_over_layers
from nullspace.editing.targets import compute_zs

__all__ = [
    "KeyValueEditor",
    "SequentialEditor",
    "TargetFunction",
    "TargetOptimizer",
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
    block = model.transformer.h[layer]
    enc = tokenizer([r.edit_prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False)
    outputs = read_module(model, block if at == "block" else block.mlp, {k: v.to(device) for k, v in enc.items()})
    positions = torch.tensor([subject_token_index(tokenizer, r.prompt, r.subject) for r in requests], device=device)
    return outputs[torch.arange(len(requests), device=device), positions].float()


def request_keys(model: nn.Module, tokenizer, layer: int, requests: Sequence[EditRequest],
                 context_templates: Sequence[str], weighting: str = "grouped") -> torch.Tensor:
    """The keys of ``requests`` at ``layer``, averaged over ``context_templates`` (compute_ks)."""
    return compute_ks(model, tokenizer, layer, [r.prompt for r in requests], [r.subject for r in requests],
                      context_templates, weighting)


def require_layers(per_layer: Mapping[int, object], layers: Sequence[int], what: str, how: str) -> None:
    """Raise unless ``per_layer`` has an entry for every layer in ``layers`` (``how``: the fix)."""
    missing = [layer for layer in layers if layer not in per_layer]
    if missing:
        raise ValueError(f"no {what} for layers {missing}; {how}.")


class SequentialEditor(ABC):
    """Edits batches of requests in sequence; restores the unedited weights on :meth:`reset`."""

    name = "editor"

    def __init__(self, model: nn.Module, layers: Sequence[int]) -> None:
        if not layers:
            raise ValueError("an editor needs at least one layer to edit.")
        self.model = model
        self.layers = tuple(layers)
        self._unedited = {layer: weight_as_matrix(ffn_output(model, layer)).detach().clone()
                          for layer in self.layers}
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

    def weight_change(self) -> dict[int, float]:
        """``‖W − W_unedited‖_F`` per edited layer."""
        return {layer: float(torch.linalg.norm(weight_as_matrix(ffn_output(self.model, layer)).detach().float()
                                               - weight.float()))
                for layer, weight in self._unedited.items()}

    def edit(self, requests: Sequence[EditRequest]) -> None:
        """Apply one batch of requests (timed into :attr:`batch_seconds`)."""
        if not requests:
            raise ValueError("the batch is empty.")
        start = time.perf_counter()
        self._edit_batch(list(requests))
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
        self.tokenizer = tokenizer
        self.targets = targets
        self.context_templates = tuple(context_templates)
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
        self.edited_covariance[layer] = self.edited_covariance.get(layer, 0) + moment

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
