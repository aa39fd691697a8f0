"""Constrained fine-tuning (FT-L, the ROME paper's baseline; AlphaEdit Table 1 "FT").

The FFN output matrices of the chosen layers are fine-tuned with Adam on the negative
log-likelihood of each request's new object after its prompt, and after every step each weight is
clamped back into an L∞ ball of radius ``norm_constraint`` around its unedited value. No key
statistics, no null space: a baseline that shows what plain gradient editing does under
sequential edits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nullspace.capture import weight_as_matrix
from nullspace.editing.methods.sequential import SequentialEditor
from nullspace.editing.prompts import target_token_batch
from nullspace.editing.requests import EditRequest
from nullspace.editing.spread import ffn_output
from nullspace.validation import require_int, require_number

__all__ = ["FineTuneEditor"]


class FineTuneEditor(SequentialEditor):
    """FT-L: Adam on the new objects' NLL, weights clamped to ``‖W − W0‖∞ ≤ norm_constraint``."""

    name = "FT"

    def __init__(self, model, tokenizer, layers: Sequence[int], *, learning_rate: float, steps: int,
                 norm_constraint: float) -> None:
        super().__init__(model, layers)
        self.tokenizer = tokenizer
        self.learning_rate = require_number(learning_rate, "learning_rate", minimum=0.0, strict=True,
                                            hint="Official FT-L value: 5e-4.")
        self.steps = require_int(steps, "steps", minimum=1)
        self.norm_constraint = require_number(norm_constraint, "norm_constraint", minimum=0.0, strict=True,
                                              allow_infinity=True,
                                              hint="The L∞ radius around the unedited weights (official: 5e-4; "
                                                   "inf: unconstrained).")

    def _edit_batch(self, requests: list[EditRequest]) -> None:
        device = next(self.model.parameters()).device
        inputs, labels = target_token_batch(self.tokenizer, [r.edit_prompt for r in requests],
                                            [r.target_new for r in requests], device)
        weights = [ffn_output(self.model, layer).weight for layer in self.layers]
        trainable = {id(w) for w in weights}
        frozen = [p for p in self.model.parameters() if id(p) not in trainable and p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        optimizer = torch.optim.Adam(weights, lr=self.learning_rate)
        try:
            for _ in range(self.steps):
                optimizer.zero_grad()
                logits = self.model(**inputs, use_cache=False).logits[:, :-1]
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                       ignore_index=-100)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    for layer in self.layers:
                        current = weight_as_matrix(ffn_output(self.model, layer))
                        unedited = self._unedited[layer].to(current.device)
                        current.copy_(torch.clamp(current, unedited - self.norm_constraint,
                                                  unedited + self.norm_constraint))
        finally:
            for p in frozen:
                p.requires_grad_(True)
