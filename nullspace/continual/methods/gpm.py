"""Gradient projection memory (Saha, Garg & Roy, ICLR 2021), the sibling of Adam-NSCL.

GPM keeps, per layer, the span of the inputs of earlier tasks (the top directions holding a
fraction ``0.97 + 0.003·t`` of the energy) and removes it from the *raw gradient* before a plain
SGD step: ``g ← g − g U1 U1ᵀ``. With SGD the step is a multiple of the projected gradient, so it
stays in the null space; with Adam it would not (Adam rescales each coordinate), which is why
Adam-NSCL projects Adam's update instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from nullspace.continual.benchmarks import Task
from nullspace.continual.feature_covariance import TaskCovariances
from nullspace.continual.methods.base import ContinualMethod
from nullspace.continual.models import ContinualModel
from nullspace.linalg import EnergyRule, NullSpace

__all__ = ["GPM", "GradientProjectionSGD"]


class GradientProjectionSGD(torch.optim.SGD):
    """SGD whose gradients are first projected into per-parameter null spaces (weights viewed as
    ``(out, d)``)."""

    def __init__(self, params: Iterable[nn.Parameter] | Iterable[dict], lr: float,
                 null_spaces: Mapping[nn.Parameter, NullSpace] | None = None, momentum: float = 0.0) -> None:
        super().__init__(params, lr=lr, momentum=momentum)
        self.null_spaces = {p: ns.to(p) for p, ns in (null_spaces or {}).items()}

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for p, ns in self.null_spaces.items():
            if p.grad is not None:
                p.grad.copy_(ns.project(p.grad.view(p.shape[0], -1)).view_as(p))
        return super().step(closure)


class GPM(ContinualMethod):
    """SGD with momentum; from task 2 on, gradients projected off the earlier tasks' input span."""

    def __init__(self, lr: float = 0.02, momentum: float = 0.9, base_energy: float = 0.97,
                 energy_step: float = 0.003) -> None:
        self.lr, self.momentum = lr, momentum
        self.base_energy, self.energy_step = base_energy, energy_step
        self.covariances = TaskCovariances()
        self.name = "GPM (SGD)"

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        null_spaces = {}
        if task.index > 0:
            rule = EnergyRule(min(1.0, self.base_energy + self.energy_step * task.index))
            layers = model.shared_layers()
            null_spaces = {layers[name].weight: ns for name, ns in self.covariances.null_spaces(rule).items()}
        return GradientProjectionSGD(shared + head, lr=self.lr, momentum=self.momentum, null_spaces=null_spaces)

    def before_task(self, model: ContinualModel, task: Task) -> None:
        if task.index > 0:
            model.check_shared_layers_have_no_bias()
            model.freeze_normalisation()

    def after_task(self, model: ContinualModel, task: Task) -> None:
        self.covariances.add_task(model, task)
