"""The interface every continual-learning method implements for the trainer."""

from __future__ import annotations

import torch
from torch import nn

from nullspace.continual.benchmarks import Task
from nullspace.continual.models import ContinualModel

__all__ = ["HEAD_LR_HINT", "ContinualMethod", "adam_with_head_lr"]

HEAD_LR_HINT = ("The current head's Adam learning rate (default lr; where the course compares a baseline with "
                "Adam-NSCL, the 3e-3 Adam-NSCL's heads get).")


class ContinualMethod:
    """A way of training a sequence of tasks: an optimizer per task, an optional extra loss, and
    hooks before and after each task. Subclasses override what they need.

    The trainer calls, for task ``t``: :meth:`before_task`, then :meth:`optimizer` once (a fresh
    optimizer per task, as in the paper), then per mini-batch the task loss plus
    :meth:`penalty`, and finally :meth:`after_task`.
    """

    name = "method"

    def before_task(self, model: ContinualModel, task: Task) -> None:
        """Called before training ``task`` (earlier heads are already frozen)."""

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        """A fresh optimizer for ``task`` over the trainable ``shared`` parameters and its ``head``."""
        raise NotImplementedError

    def penalty(self, model: ContinualModel, task: Task, x: torch.Tensor,
                features: torch.Tensor) -> torch.Tensor | None:
        """An extra loss term for the mini-batch ``x`` (``features`` = ``model.features(x)``)."""
        return None

    def after_task(self, model: ContinualModel, task: Task) -> None:
        """Called after training ``task`` (statistics, anchors, null spaces)."""

    def __repr__(self) -> str:
        return self.name


def adam_with_head_lr(shared: list[nn.Parameter], head: list[nn.Parameter], lr: float,
                      head_lr: float) -> torch.optim.Adam:
    """Adam over the ``shared`` parameters at ``lr`` and the current task's ``head`` at ``head_lr``
    (one group each; with ``head_lr == lr`` the same steps as one group over both)."""
    return torch.optim.Adam([{"params": shared}, {"params": head, "lr": head_lr}], lr=lr)
