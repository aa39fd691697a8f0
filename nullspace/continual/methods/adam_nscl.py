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

Two variants are named as such (:meth:`AdamNSCLMethod.paper`, :meth:`AdamNSCLMethod.course`):

* **the paper's**: "zero" means ``λ ≤ a·λ_min`` (§4.2; a = 10 for 10-split CIFAR-100, 30 for
  20-split) and batch-norm parameters are trained, regularised with EWC (coefficient 100, §5);
* **the course's**: "zero" means outside the top 95% of the input energy (an energy rule, as in
  GPM), and normalisation is frozen after task 1, which keeps old outputs exactly in place.

The official code departs from the paper in ways the paper does not mention; each is a switch
here, off by default: ``scale_by_frobenius`` (``P / ‖P‖_F``), ``batch_means`` (the covariance
from mini-batch means) and ``eps_placement="official"`` (Adam's ``ε`` added before the bias
correction, as PyTorch's Adam did before version 1.5).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from nullspace.continual.arguments import check_choice, check_fraction, check_number
from nullspace.continual.benchmarks import Task
from nullspace.continual.feature_covariance import TaskCovariances
from nullspace.continual.methods.base import ContinualMethod
from nullspace.continual.methods.ewc import FisherAnchors, diagonal_fisher
from nullspace.continual.models import ContinualModel
from nullspace.linalg import EnergyRule, MinRatioRule, NullSpace, SelectionRule

__all__ = ["AdamNSCL", "AdamNSCLMethod"]

EPS_PLACEMENTS = ("pytorch", "official")


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
        eps_placement: ``"pytorch"`` (the update ``m̂ / (√v̂ + ε)``) or ``"official"``: the official
            code's Adam adds ``ε`` to ``√v`` before the bias correction, i.e. divides by
            ``√v̂ + ε / √(1 − β₂ᵗ)``, a ``ε`` up to 31.6 times larger in the first steps.

    Every projected parameter must belong to ``params``; otherwise its projection would be
    silently skipped, which is how the official code trains plain Adam on PyTorch ≥ 2.
    """

    def __init__(self, params: Iterable[nn.Parameter] | Iterable[dict],
                 null_spaces: Mapping[nn.Parameter, NullSpace] | None = None, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 scale_by_frobenius: bool = False, project: str = "update", eps_placement: str = "pytorch") -> None:
        check_number(lr, "lr", positive=True, hint="Adam's learning rate (the course uses 1e-3).")
        for i, beta in enumerate(betas):
            check_fraction(beta, f"betas[{i}]", hint="Adam's moment decay rates are (0.9, 0.999) by default.")
        check_number(eps, "eps", hint="Adam's ε (1e-8 by default).")
        check_number(weight_decay, "weight_decay", hint="Use 0 for none (the paper uses 5e-5 on CIFAR-100).")
        check_choice(project, "project", ("update", "gradient"))
        check_choice(eps_placement, "eps_placement", EPS_PLACEMENTS)
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})
        for i, group in enumerate(self.param_groups):
            check_number(group["lr"], f"the learning rate of parameter group {i}", positive=True)
            check_number(group["weight_decay"], f"the weight decay of parameter group {i}")
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
        self.eps_placement = eps_placement
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
                eps = group["eps"] if self.eps_placement == "pytorch" else group["eps"] / math.sqrt(bias2)
                update = (exp_avg / bias1) / ((exp_avg_sq / bias2).sqrt_().add_(eps))
                if protected and self.project_what == "update":
                    update = self._project(p, update)
                    self.projected_steps += 1
                p.add_(update, alpha=-group["lr"])
        return loss


def _describe(rule: SelectionRule) -> str:
    if isinstance(rule, MinRatioRule):
        return f"a·λmin, a={rule.a:g}"
    if isinstance(rule, EnergyRule):
        return f"energy {rule.fraction:g}"
    return rule.describe()


class AdamNSCLMethod(ContinualMethod):
    """The continual-learning method: plain Adam on task 1; after every task, accumulate each
    shared layer's input covariance (Eq. 4), select its null space with ``rule`` (Eq. 5), and train
    the next task with :class:`AdamNSCL` (Eq. 6). Build the two named variants with
    :meth:`paper` and :meth:`course`.

    Args:
        rule: which eigenvalues count as zero (default: the course's ``EnergyRule(0.95)``).
        lr: Adam's learning rate for the shared layers on task 1; ``later_lr`` from task 2 on
            (default: the same; the official CIFAR recipe uses 1e-4, then 5e-5).
        head_lr: the current head's learning rate (default ``lr``; the paper uses a larger one).
        normalisation: ``"freeze"`` (the course: parameters and running statistics fixed after
            task 1) or ``"ewc"`` (the paper: parameters train with learning rate
            ``normalisation_lr`` under an EWC penalty ``normalisation_ewc · Σ_k F_k (θ − θ*_k)²``,
            the official code's form with coefficient 100).
            Under ``"ewc"`` the running statistics are left to the training protocol
            (:class:`~nullspace.continual.trainer.TrainConfig`): the official code lets them
            follow every new task; the paper says nothing of them.
        weight_decay: added to the gradient of the shared and normalisation parameters (not the
            heads), as in the official code (5e-5 on CIFAR-100).
        scale_by_frobenius, project, eps_placement: see :class:`AdamNSCL`.
        batch_means: build the covariance from mini-batch means (the official code), see
            :mod:`nullspace.continual.feature_covariance`.
        label: shown in the method's name, ``"Adam-NSCL (label)"``.

    Shared layers must have no bias (an unprojected bias moves old outputs); every parameter that
    trains from task 2 on is projected, regularised (normalisation under ``"ewc"``) or belongs to
    the current head.
    """

    def __init__(self, rule: SelectionRule | None = None, lr: float = 1e-3, head_lr: float | None = None, *,
                 later_lr: float | None = None, normalisation: str = "freeze", normalisation_lr: float | None = None,
                 normalisation_ewc: float = 100.0, weight_decay: float = 0.0, scale_by_frobenius: bool = False,
                 project: str = "update", eps_placement: str = "pytorch", batch_means: bool = False,
                 batch_size: int = 32, label: str | None = None) -> None:
        self.rule = rule if rule is not None else EnergyRule(0.95)
        self.lr = check_number(lr, "lr", positive=True, hint="Adam's learning rate (the course uses 1e-3).")
        self.later_lr = check_number(later_lr if later_lr is not None else lr, "later_lr", positive=True)
        self.head_lr = check_number(head_lr if head_lr is not None else lr, "head_lr", positive=True,
                                    hint="The current head's learning rate (the paper uses 1e-3).")
        self.normalisation = check_choice(normalisation, "normalisation", ("freeze", "ewc"))
        self.normalisation_lr = check_number(normalisation_lr if normalisation_lr is not None else lr,
                                             "normalisation_lr", positive=True)
        self.normalisation_ewc = check_number(normalisation_ewc, "normalisation_ewc",
                                              hint="The paper regularises batch norm with EWC at 100.")
        self.weight_decay = check_number(weight_decay, "weight_decay", hint="Use 0 for none.")
        self.scale_by_frobenius = scale_by_frobenius
        self.project = check_choice(project, "project", ("update", "gradient"))
        self.eps_placement = check_choice(eps_placement, "eps_placement", EPS_PLACEMENTS)
        self.covariances = TaskCovariances(batch_means=batch_means, batch_size=batch_size if batch_means else 256)
        self.normalisation_anchors = FisherAnchors()
        self.null_dims: list[dict[str, int]] = []   # after task t: null-space size per layer
        self.current_null_spaces: dict[str, NullSpace] = {}
        label = label if label is not None else _describe(self.rule)
        self.name = f"Adam-NSCL ({label})" if project == "update" else f"Adam-NSCL ({label}, gradient projected)"

    @classmethod
    def paper(cls, a: float = 10.0, **options) -> AdamNSCLMethod:
        """The paper's Adam-NSCL: null directions ``λ ≤ a·λ_min`` (a = 10 for 10-split CIFAR-100,
        30 for 20-split), the projector ``U2 U2ᵀ`` of Eq. 6, batch-norm parameters regularised with
        EWC (coefficient 100). ``options`` go to the constructor (learning rates, the official
        code's switches)."""
        options.setdefault("normalisation", "ewc")
        options.setdefault("label", f"paper, a={a:g}")
        return cls(rule=MinRatioRule(a), **options)

    @classmethod
    def course(cls, energy: float = 0.95, **options) -> AdamNSCLMethod:
        """The course's variant: null directions outside the top ``energy`` of the input energy,
        normalisation frozen after task 1 (old outputs stay exactly in place)."""
        options.setdefault("normalisation", "freeze")
        options.setdefault("label", f"course, energy {energy:g}")
        return cls(rule=EnergyRule(energy), **options)

    def before_task(self, model: ContinualModel, task: Task) -> None:
        if task.index > 0:
            model.check_shared_layers_have_no_bias()
            if self.normalisation == "freeze":
                model.freeze_normalisation()

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        normalisation_ids = {id(p) for p in model.normalisation_parameters().values()}
        weights = [p for p in shared if id(p) not in normalisation_ids]
        normalisation = [p for p in shared if id(p) in normalisation_ids]
        null_spaces: dict[nn.Parameter, NullSpace] = {}
        if task.index > 0:
            layers = model.shared_layers()
            null_spaces = {layers[name].weight: ns for name, ns in self.current_null_spaces.items()}
            unprotected = [tuple(p.shape) for p in weights if all(p is not q for q in null_spaces)]
            if unprotected:
                raise ValueError(
                    f"shared parameters of shapes {unprotected} would train without projection and "
                    "move old-task outputs. Drop biases from shared layers and freeze normalisation.")
        lr = self.lr if task.index == 0 else self.later_lr
        groups = [{"params": weights, "lr": lr, "weight_decay": self.weight_decay},
                  {"params": head, "lr": self.head_lr, "weight_decay": 0.0}]
        if normalisation:
            groups.append({"params": normalisation, "lr": self.normalisation_lr, "weight_decay": self.weight_decay})
        return AdamNSCL(groups, null_spaces=null_spaces, lr=lr, scale_by_frobenius=self.scale_by_frobenius,
                        project=self.project, eps_placement=self.eps_placement)

    def penalty(self, model: ContinualModel, task: Task, x: torch.Tensor,
                features: torch.Tensor) -> torch.Tensor | None:
        if self.normalisation != "ewc" or not self.normalisation_ewc:
            return None
        quadratic = self.normalisation_anchors.penalty(model)
        return None if quadratic is None else self.normalisation_ewc * quadratic

    def after_task(self, model: ContinualModel, task: Task) -> None:
        self.covariances.add_task(model, task)
        self.current_null_spaces = self.covariances.null_spaces(self.rule)
        self.null_dims.append({name: ns.null_dim for name, ns in self.current_null_spaces.items()})
        normalisation = model.normalisation_parameters()
        if self.normalisation == "ewc" and normalisation:
            fisher = diagonal_fisher(model, task, names=list(normalisation))
            self.normalisation_anchors.add(fisher, normalisation)
