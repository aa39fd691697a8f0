"""The sequential editors of ROME, MEMIT and AlphaEdit on a GPT-2 model.

Each is a thin layer over its method's closed form (:mod:`~nullspace.editing.rome`,
:mod:`~nullspace.editing.memit`, :mod:`~nullspace.editing.alphaedit`) and the shared loop of
:class:`~nullspace.editing.sequential.KeyValueEditor`. MEMIT and AlphaEdit differ in
:meth:`solve` only: AlphaEdit's is MEMIT's with the projector ``P`` inserted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from nullspace.editing.alphaedit import alphaedit_update
from nullspace.editing.memit import memit_update
from nullspace.editing.requests import EditRequest
from nullspace.editing.rome import rome_update
from nullspace.editing.sequential import (
    KeyValueEditor,
    SequentialEditor,
    TargetFunction,
    request_keys,
    subject_outputs,
)
from nullspace.editing.spread import apply_delta
from nullspace.linalg import NullSpace

__all__ = ["AlphaEditEditor", "MemitEditor", "RomeEditor"]


def _require_layers(per_layer: Mapping[int, object], layers: Sequence[int], what: str, how: str) -> None:
    missing = [layer for layer in layers if layer not in per_layer]
    if missing:
        raise ValueError(f"no {what} for layers {missing}; {how}.")


class MemitEditor(KeyValueEditor):
    """Sequential MEMIT: Eq. 15 at every edited layer with the cache ``Kp Kpᵀ`` of earlier batches."""

    name = "MEMIT"

    def __init__(self, model, tokenizer, layers: Sequence[int], targets: TargetFunction, *,
                 key_covariances: Mapping[int, torch.Tensor], covariance_weight: float,
                 context_templates: Sequence[str] = ("{}",)) -> None:
        super().__init__(model, tokenizer, layers, targets, context_templates=context_templates)
        _require_layers(key_covariances, layers, "key covariance C0",
                        "compute them with nullspace.editing.statistics.key_statistics")
        device = next(model.parameters()).device
        self.key_covariances = {layer: key_covariances[layer].to(device, torch.float64) for layer in layers}
        self.covariance_weight = covariance_weight

    def solve(self, layer: int, keys: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        return memit_update(keys, residuals, self.key_covariances[layer], covariance_weight=self.covariance_weight,
                            edited_covariance=self.edited_covariance.get(layer))


class AlphaEditEditor(KeyValueEditor):
    """Sequential AlphaEdit: Eq. 14 (official solve form) at every edited layer.

    The projectors are built once, before editing (``NullSpace.projector()`` of each layer's
    ``C0``), and ``P Kp Kpᵀ`` is kept up to date batch by batch, so a batch costs one ``d³`` solve
    per layer, like MEMIT's.
    """

    name = "AlphaEdit"

    def __init__(self, model, tokenizer, layers: Sequence[int], targets: TargetFunction, *,
                 null_spaces: Mapping[int, NullSpace], l2_weight: float,
                 context_templates: Sequence[str] = ("{}",)) -> None:
        super().__init__(model, tokenizer, layers, targets, context_templates=context_templates)
        _require_layers(null_spaces, layers, "null space", "build them with nullspace.linalg.null_space(C0, rule)")
        device = next(model.parameters()).device
        self.projectors = {layer: null_spaces[layer].projector().to(device) for layer in layers}
        self.l2_weight = l2_weight
        self.projected_edited_covariance: dict[int, torch.Tensor] = {}

    def reset(self) -> None:
        super().reset()
        self.projected_edited_covariance = {}

    def remember_keys(self, layer: int, keys: torch.Tensor) -> None:
        super().remember_keys(layer, keys)
        k = keys.to(self.projectors[layer].device, torch.float64)
        projected = (self.projectors[layer] @ k.T) @ k
        self.projected_edited_covariance[layer] = self.projected_edited_covariance.get(layer, 0) + projected

    def solve(self, layer: int, keys: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        return alphaedit_update(keys, residuals, self.projectors[layer], l2_weight=self.l2_weight,
                                projected_edited_covariance=self.projected_edited_covariance.get(layer))


class RomeEditor(SequentialEditor):
    """Sequential ROME: one rank-one update of one layer per request, requests in turn.

    Each request's target ``z`` is optimised at the edited layer's own output, against the model
    as edited by the requests before it; the key is averaged over the context templates.
    """

    name = "ROME"

    def __init__(self, model, tokenizer, layer: int, targets: TargetFunction, *,
                 key_covariance: torch.Tensor, context_templates: Sequence[str] = ("{}",),
                 ridge: float = 1e-6) -> None:
        super().__init__(model, [layer])
        self.tokenizer = tokenizer
        self.targets = targets
        self.context_templates = tuple(context_templates)
        self.key_covariance = key_covariance.to(next(model.parameters()).device, torch.float64)
        self.ridge = ridge

    def _edit_batch(self, requests: list[EditRequest]) -> None:
        (layer,) = self.layers
        for request in requests:
            z = self.targets(self.model, self.tokenizer, [request], layer)[0]
            key = request_keys(self.model, self.tokenizer, layer, [request], self.context_templates)[0]
            residual = z - subject_outputs(self.model, self.tokenizer, layer, [request])[0]
            apply_delta(self.model, layer, rome_update(key, residual, self.key_covariance, ridge=self.ridge))
