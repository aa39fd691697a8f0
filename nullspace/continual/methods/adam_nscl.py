"""Adam-NSCL (Wang, Li, Sun & Xu, CVPR 2021): Adam whose update lives in the null space of the
earlier tasks' layer inputs.

For a shared layer with weight ``W`` (viewed as ``(out, d)``) and the inputs ``X̄`` of all earlier
tasks (rows, accumulated as in Eq. 4), any change ``Δ`` with ``X̄ Δᵀ = 0`` leaves the layer's
outputs on those inputs unchanged. The null space of ``X̄`` is that of its uncentered covariance
``X̄ᵀX̄``; its SVD ``U Λ Uᵀ`` (Eq. 5) is split into ``U1`` (non-zero singular values) and ``U2``
("zero" ones, chosen by a selection rule), and the parameter update of task ``t ≥ 2`` is

    ``Δw = U2 U2ᵀ g``   (Eq. 6, written here along the last axis: ``Δ = g P`` with ``P = U2 U2ᵀ``)

where ``g`` is the **Adam update** ``m̂ / (√v̂ + ε)``, not the raw gradient: Adam divides each
coordinate by its own ``√v̂``, which would rotate a projected gradient back out of the null space.
Task 1 trains with plain Adam. Each task starts a fresh optimizer (moments reset).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from nullspace.continual.benchmarks import Task
from nullspace.continual.feature_covariance import TaskCovariances
from nullspace.continual.methods.base import ContinualMethod
from nullspace.continual.models import ContinualModel
from nullspace.linalg import EnergyRule, NullSpace, SelectionRule

__all__ = ["AdamNSCL", "AdamNSCLMethod"]


class AdamNSCL(torch.optim.Optimizer):
    """Adam with the update of selected parameters projected onto a null space (Eq. 6).

    Args:
        params: parameters or parameter groups, as for ``torch.optim.Adam``.
        null_spaces: for each parameter to protect, the :class:`~nullspace.linalg.NullSpace` of
            its layer's inputs; the parameter is viewed as ``(shape[0], -1)`` (a conv weight as
            ``(out, C·k·k)``). Parameters without one take plain Adam steps (the current head).
        lr, betas, eps, weight_decay: as in Adam (weight decay is added to the gradient).
        scale_by_frobenius: divide the projector by its Frobenius norm, ``P / ‖P‖_F = P / √k``
            with ``k`` the null-space dimension, as the official code does. Not in the paper: it
            is a hidden per-layer step-size scale. Off by default.
        project: ``"update"`` (the paper) or ``"gradient"``, which projects the raw gradient
            before Adam. The second exists to show that it fails: Adam's per-coordinate scaling
            moves the step out of the null space.

    Every projected parameter must belong to ``params``; otherwise its projection would be
    silently skipped, which is how the official code trains plain Adam on PyTorch ≥ 2.
    """

    def __init__(self, params: Iterable[nn.Parameter] | Iterable[dict],
                 null_spaces: Mapping[nn.Parameter, NullSpace] | None = None, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 scale_by_frobenius: bool = False, project: str = "update") -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}.")
        if project not in {"update", "gradient"}:
            raise ValueError(f"project must be 'update' (the paper) or 'gradient', got {project!r}.")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        members = {id(p) for group in self.param_groups for p in group["params"]}
        self.null_spaces: dict[nn.Parameter, NullSpace] = {}
        for p, ns in (null_spaces or {}).items():
            if id(p) not in members:
                raise ValueError(
                    f"a null space was given for a parameter of shape {tuple(p.shape)} that this "
                    "optimizer does not update; its projection would be silently skipped. Pass the "
                    "parameter in params (and make sure it requires grad).")
            if p.numel() // p.shape[0] != ns.dim:
                raise ValueError(f"a parameter of shape {tuple(p.shape)} viewed as (out, d) has d = "
                                 f"{p.numel() // p.shape[0]}, but its null space has dimension {ns.dim}.")
            self.null_spaces[p] = ns.to(p)
        self.scale_by_frobenius = scale_by_frobenius
        self.project_what = project
        self.projected_steps = 0

    def _project(self, p: nn.Parameter, value: torch.Tensor) -> torch.Tensor:
        ns = self.null_spaces[p]
        projected = ns.project(value.reshape(p.shape[0], -1)).view_as(p)
        if self.scale_by_frobenius and ns.null_dim > 0:
            projected = projected / math.sqrt(ns.null_dim)
        return projected

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue  # no gradient, no update: old outputs cannot move
                grad = p.grad
                if group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                protected = p in self.null_spaces
                if protected and self.project_what == "gradient":
                    grad = self._project(p, grad)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias1 = 1 - beta1 ** state["step"]
                bias2 = 1 - beta2 ** state["step"]
                update = (exp_avg / bias1) / ((exp_avg_sq / bias2).sqrt_().add_(group["eps"]))
                if protected and self.project_what == "update":
                    update = self._project(p, update)
                    self.projected_steps += 1
                p.add_(update, alpha=-group["lr"])
        return loss


class AdamNSCLMethod(ContinualMethod):
    """The continual-learning method: plain Adam on task 1; after every task, accumulate each
    shared layer's input covariance (Eq. 4), select its null space with ``rule`` (Eq. 5), and train
    the next task with :class:`AdamNSCL` (Eq. 6).

    ``rule`` defaults to :class:`~nullspace.linalg.EnergyRule` (0.95: directions outside the top
    95% of the input energy are null), which is stable across seeds on the course benchmarks; the
    paper's ``MinRatioRule(a)`` is available. ``head_lr`` is the current head's learning rate (the
    paper uses a larger one for the heads than for the shared layers). Shared layers
    must have no bias, and normalisation layers are frozen from task 2 on (see
    :mod:`nullspace.continual.models`), so every parameter that still trains from task 2 on is
    either projected or belongs to the current head.
    """

    def __init__(self, rule: SelectionRule | None = None, lr: float = 1e-3, head_lr: float | None = None,
                 scale_by_frobenius: bool = False, project: str = "update") -> None:
        self.rule = rule if rule is not None else EnergyRule(0.95)
        self.lr = lr
        self.head_lr = head_lr if head_lr is not None else lr
        self.scale_by_frobenius = scale_by_frobenius
        self.project = project
        self.covariances = TaskCovariances()
        self.null_dims: list[dict[str, int]] = []   # after task t: null-space size per layer
        self.current_null_spaces: dict[str, NullSpace] = {}
        self.name = "Adam-NSCL" if project == "update" else "Adam-NSCL (gradient projected)"

    def before_task(self, model: ContinualModel, task: Task) -> None:
        if task.index > 0:
            model.check_shared_layers_have_no_bias()
            model.freeze_normalisation()

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        null_spaces: dict[nn.Parameter, NullSpace] = {}
        if task.index > 0:
            layers = model.shared_layers()
            null_spaces = {layers[name].weight: ns for name, ns in self.current_null_spaces.items()}
            unprotected = [p.shape for p in shared if all(p is not q for q in null_spaces)]
            if unprotected:
                raise ValueError(
                    f"shared parameters of shapes {unprotected} would train without projection and "
                    "move old-task outputs. Drop biases from shared layers and freeze normalisation.")
        groups = [{"params": shared, "lr": self.lr}, {"params": head, "lr": self.head_lr}]
        return AdamNSCL(groups, null_spaces=null_spaces, lr=self.lr,
                        scale_by_frobenius=self.scale_by_frobenius, project=self.project)

    def after_task(self, model: ContinualModel, task: Task) -> None:
        self.covariances.add_task(model, task)
        self.current_null_spaces = self.covariances.null_spaces(self.rule)
        self.null_dims.append({name: ns.null_dim for name, ns in self.current_null_spaces.items()})
