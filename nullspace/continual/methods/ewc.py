"""Elastic weight consolidation (Kirkpatrick et al., PNAS 2017) with a diagonal Fisher.

After task ``k`` the method stores the parameters ``θ*_k`` and the diagonal of the empirical
Fisher information ``F_k = E[(∂ log p(y|x) / ∂θ)²]``; while training later tasks it adds
``λ/2 · Σ_k Σ_i F_k,i (θ_i − θ*_k,i)²`` to the loss. The paper's Table 1 compares against it,
and Adam-NSCL itself uses EWC for batch-norm parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from nullspace.continual.benchmarks import Task
from nullspace.continual.methods.base import ContinualMethod
from nullspace.continual.models import ContinualModel

__all__ = ["EWC", "diagonal_fisher"]


def diagonal_fisher(model: ContinualModel, task: Task, max_samples: int = 500,
                    batch_size: int = 100) -> dict[str, torch.Tensor]:
    """Diagonal empirical Fisher of the shared parameters on ``task``'s training data: the mean
    over samples of the squared per-sample gradient of the log-likelihood of the true label."""
    names = [name for name, p in model.named_parameters() if not name.startswith("heads.") and p.requires_grad]
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


class EWC(ContinualMethod):
    """Adam on each task plus the EWC penalty of every earlier task."""

    def __init__(self, strength: float = 1000.0, lr: float = 1e-3) -> None:
        self.strength = strength
        self.lr = lr
        self.anchors: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
        self.name = f"EWC (λ={strength:g})"

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(shared + head, lr=self.lr)

    def penalty(self, model: ContinualModel, task: Task, x: torch.Tensor,
                features: torch.Tensor) -> torch.Tensor | None:
        if not self.anchors:
            return None
        current = dict(model.named_parameters())
        total = sum((fisher[name] * (current[name] - anchor[name]).pow(2)).sum()
                    for fisher, anchor in self.anchors for name in fisher)
        return 0.5 * self.strength * total

    def after_task(self, model: ContinualModel, task: Task) -> None:
        fisher = diagonal_fisher(model, task)
        anchor = {name: p.detach().clone() for name, p in model.named_parameters() if name in fisher}
        self.anchors.append((fisher, anchor))
