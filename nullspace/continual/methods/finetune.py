"""Naive fine-tuning: keep training the shared layers on each new task (the forgetting baseline)."""

from __future__ import annotations

import torch
from torch import nn

from nullspace.continual.arguments import check_choice, check_fraction, check_number
from nullspace.continual.benchmarks import Task
from nullspace.continual.methods.base import HEAD_LR_HINT, ContinualMethod, adam_with_head_lr
from nullspace.continual.models import ContinualModel

__all__ = ["FineTune"]


class FineTune(ContinualMethod):
    """Plain SGD (with momentum) or Adam on every task, nothing done against forgetting.

    ``head_lr`` (Adam only; default ``lr``) is the current head's learning rate: where the course
    compares fine-tuning with Adam-NSCL, it gets the rate the paper gives Adam-NSCL's heads.
    """

    def __init__(self, optimizer: str = "adam", lr: float | None = None, momentum: float = 0.9,
                 head_lr: float | None = None) -> None:
        self.kind = check_choice(optimizer, "optimizer", ("adam", "sgd"))
        lr = lr if lr is not None else (1e-3 if optimizer == "adam" else 0.02)
        self.lr = check_number(lr, "lr", positive=True, hint="The course uses 1e-3 with Adam, 0.02 with SGD.")
        self.momentum = check_fraction(momentum, "momentum", hint="SGD's momentum (0.9 by default, 0 for plain SGD).")
        if head_lr is not None and self.kind == "sgd":
            raise ValueError("head_lr is for Adam: fine-tuning with SGD trains the head at lr, as GPM does. "
                             "Leave head_lr out, or use optimizer='adam'.")
        self.head_lr = check_number(head_lr if head_lr is not None else self.lr, "head_lr", positive=True,
                                    hint=HEAD_LR_HINT)
        self.name = f"fine-tuning ({'Adam' if optimizer == 'adam' else 'SGD'})"

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        if self.kind == "adam":
            return adam_with_head_lr(shared, head, self.lr, self.head_lr)
        return torch.optim.SGD(shared + head, lr=self.lr, momentum=self.momentum)
