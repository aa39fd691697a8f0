"""Naive fine-tuning: keep training the shared layers on each new task (the forgetting baseline)."""

from __future__ import annotations

import torch
from torch import nn

from nullspace.continual.arguments import check_choice, check_fraction, check_number
from nullspace.continual.benchmarks import Task
from nullspace.continual.methods.base import ContinualMethod
from nullspace.continual.models import ContinualModel

__all__ = ["FineTune"]


class FineTune(ContinualMethod):
    """Plain SGD (with momentum) or Adam on every task, nothing done against forgetting."""

    def __init__(self, optimizer: str = "adam", lr: float | None = None, momentum: float = 0.9) -> None:
        self.kind = check_choice(optimizer, "optimizer", ("adam", "sgd"))
        lr = lr if lr is not None else (1e-3 if optimizer == "adam" else 0.02)
        self.lr = check_number(lr, "lr", positive=True, hint="The course uses 1e-3 with Adam, 0.02 with SGD.")
        self.momentum = check_fraction(momentum, "momentum", hint="SGD's momentum (0.9 by default, 0 for plain SGD).")
        self.name = f"fine-tuning ({'Adam' if optimizer == 'adam' else 'SGD'})"

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        params = shared + head
        if self.kind == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)
