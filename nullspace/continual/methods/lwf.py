"""Learning without forgetting (Li & Hoiem, TPAMI 2017).

Before task ``t`` the method keeps a frozen copy of the model; while training task ``t`` it adds a
distillation loss that keeps every earlier head's (softened) outputs on the *new* task's inputs
close to the copy's: ``λ · T² · Σ_{j<t} KL(softmax(z_j^old / T) ‖ softmax(z_j / T))``.
No old data is stored.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from nullspace.continual.arguments import check_number
from nullspace.continual.benchmarks import Task
from nullspace.continual.methods.base import HEAD_LR_HINT, ContinualMethod, adam_with_head_lr
from nullspace.continual.models import ContinualModel

__all__ = ["LwF"]


class LwF(ContinualMethod):
    """Adam on each task (the current head at ``head_lr``, default ``lr``) plus knowledge
    distillation on the earlier heads."""

    def __init__(self, strength: float = 1.0, temperature: float = 2.0, lr: float = 1e-3,
                 head_lr: float | None = None) -> None:
        self.strength = check_number(strength, "strength", hint="It is LwF's λ, the weight of the distillation loss (1 by default).")
        self.temperature = check_number(temperature, "temperature", positive=True,
                                        hint="The logits are divided by it; use 1 or more (2 by default).")
        self.lr = check_number(lr, "lr", positive=True, hint="Adam's learning rate (the course uses 1e-3).")
        self.head_lr = check_number(head_lr if head_lr is not None else lr, "head_lr", positive=True,
                                    hint=HEAD_LR_HINT)
        self.teacher: ContinualModel | None = None
        self.name = f"LwF (λ={strength:g})"

    def before_task(self, model: ContinualModel, task: Task) -> None:
        if task.index > 0:
            self.teacher = copy.deepcopy(model).eval()
            self.teacher.requires_grad_(False)

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        return adam_with_head_lr(shared, head, self.lr, self.head_lr)

    def penalty(self, model: ContinualModel, task: Task, x: torch.Tensor,
                features: torch.Tensor) -> torch.Tensor | None:
        if self.teacher is None or task.index == 0:
            return None
        with torch.no_grad():
            old_features = self.teacher.features(x)
        t = self.temperature
        loss = features.new_zeros(())
        for j in range(task.index):
            old = F.log_softmax(self.teacher.heads[j](old_features) / t, dim=1)
            new = F.log_softmax(model.heads[j](features) / t, dim=1)
            loss = loss + F.kl_div(new, old, log_target=True, reduction="batchmean")
        return self.strength * t * t * loss
