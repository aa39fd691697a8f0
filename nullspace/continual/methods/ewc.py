"""Elastic weight consolidation (Kirkpatrick et al., PNAS 2017) with a diagonal Fisher.

After task ``k`` the method stores the parameters ``θ*_k`` and the diagonal of the empirical
Fisher information ``F_k = E[(∂ log p(y|x) / ∂θ)²]``; while training later tasks it adds
``λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²`` to the loss. The paper's Table 1 compares against it,
and Adam-NSCL itself uses an EWC penalty for batch-norm parameters.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from nullspace.continual.arguments import check_int, check_number
from nullspace.continual.benchmarks import Task
from nullspace.continual.methods.base import HEAD_LR_HINT, ContinualMethod, adam_with_head_lr
from nullspace.continual.models import ContinualModel

__all__ = ["EWC", "FisherAnchors", "diagonal_fisher"]


def diagonal_fisher(model: ContinualModel, task: Task, names: Iterable[str] | None = None,
                    max_samples: int = 500, batch_size: int = 100) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher on ``task``'s training data: the mean over (at most
    ``max_samples``) samples of the squared per-sample gradient of the log-likelihood of the true
    label, for the parameters ``names`` (default: every trainable parameter outside the heads).
    The model is evaluated in eval mode (normalisation uses its running statistics)."""
    check_int(max_samples, "max_samples")
    check_int(batch_size, "batch_size")
    if names is None:
        names = [name for name, p in model.named_parameters() if not name.startswith("heads.") and p.requires_grad]
    names = list(names)
    params = {name: p.detach() for name, p in model.named_parameters()}
    was_training = model.training
    model.eval()

    def sample_loss(trainable: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, {**params, **trainable}, (x.unsqueeze(0), task.index))
        return F.cross_entropy(logits, y.unsqueeze(0))

    per_sample_grads = vmap(grad(sample_loss), in_dims=(None, 0, 0))
    fisher = {name: torch.zeros_like(params[name]) for name in names}
    where = next(model.parameters()).device
    x_all, y_all = task.train_x[:max_samples].to(where), task.train_y[:max_samples].to(where)
    for start in range(0, len(x_all), batch_size):
        grads = per_sample_grads({n: params[n] for n in names}, x_all[start:start + batch_size],
                                 y_all[start:start + batch_size])
        for name in names:
            fisher[name] += grads[name].pow(2).sum(0)
    model.train(was_training)
    return {name: value / len(x_all) for name, value in fisher.items()}


class FisherAnchors:
    """The sum over earlier tasks ``k`` of ``Σ_i F_k,i (θ_i − θ*_k,i)²``, kept in closed form.

    Expanding the squares, the sum equals ``Σ_i A_i (θ_i − μ_i)² + c`` with ``A = Σ_k F_k`` and
    ``μ = Σ_k F_k θ*_k / A``, where ``c ≥ 0`` does not depend on ``θ``. :meth:`penalty` returns the
    first term: the same gradient as the sum, at the cost of one term however many tasks were
    added (``c`` is left out; it is zero after one task).
    """

    def __init__(self) -> None:
        self.total: dict[str, torch.Tensor] = {}      # A = Σ_k F_k
        self.weighted: dict[str, torch.Tensor] = {}   # Σ_k F_k θ*_k
        self.centre: dict[str, torch.Tensor] = {}     # μ = Σ_k F_k θ*_k / A (0 where A = 0)
        self.tasks = 0

    def add(self, fisher: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor]) -> None:
        """Add one task's Fisher diagonal and parameters (both keyed by parameter name)."""
        for name, f in fisher.items():
            theta = anchor[name].detach()
            if name not in self.total:           # one task: the centre is its anchor, exactly
                self.total[name], self.weighted[name], self.centre[name] = f.clone(), f * theta, theta.clone()
                continue
            self.total[name] = self.total[name] + f
            self.weighted[name] = self.weighted[name] + f * theta
            total = self.total[name]
            self.centre[name] = torch.where(total > 0, self.weighted[name] / total.clamp_min(torch.finfo(total.dtype).tiny),
                                            self.centre[name])
        self.tasks += 1

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        """``Σ_i A_i (θ_i − μ_i)²`` at the model's current parameters (None before any task)."""
        if not self.tasks:
            return None
        current = dict(model.named_parameters())
        return torch.stack([(total * (current[name] - self.centre[name]).pow(2)).sum()
                            for name, total in self.total.items()]).sum()


class EWC(ContinualMethod):
    """Adam on each task (the current head at ``head_lr``, default ``lr``) plus the EWC penalty of
    every earlier task."""

    def __init__(self, strength: float = 1000.0, lr: float = 1e-3, head_lr: float | None = None) -> None:
        self.strength = check_number(strength, "strength", hint="It is EWC's λ (the course uses 1e3 to 1e5).")
        self.lr = check_number(lr, "lr", positive=True, hint="Adam's learning rate (the course uses 1e-3).")
        self.head_lr = check_number(head_lr if head_lr is not None else lr, "head_lr", positive=True,
                                    hint=HEAD_LR_HINT)
        self.anchors = FisherAnchors()
        self.name = f"EWC (λ={strength:g})"

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        return adam_with_head_lr(shared, head, self.lr, self.head_lr)

    def penalty(self, model: ContinualModel, task: Task, x: torch.Tensor,
                features: torch.Tensor) -> torch.Tensor | None:
        quadratic = self.anchors.penalty(model)
        return None if quadratic is None else 0.5 * self.strength * quadratic

    def after_task(self, model: ContinualModel, task: Task) -> None:
        fisher = diagonal_fisher(model, task)
        self.anchors.add(fisher, {name: p for name, p in model.named_parameters() if name in fisher})
