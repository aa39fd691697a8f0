"""Gradient projection memory (Saha, Garg & Roy, ICLR 2021), the sibling of Adam-NSCL.

GPM keeps, per layer, an orthonormal basis ``M`` of the inputs that earlier tasks used, and
removes its span from the *raw gradient* before a plain SGD step: ``g ← g − g M Mᵀ``. With SGD the
step is a multiple of the projected gradient, so it stays in the null space; with Adam it would
not (Adam rescales each coordinate), which is why Adam-NSCL projects Adam's update instead.

As the paper and its official code do it (the defaults here):

* after task ``t`` (1-based), the representation matrix ``R`` of each layer holds the layer's
  inputs for ``samples = 125`` random training samples of the task (convolution inputs as
  patches), and the threshold is ``ε_t = 0.97 + 0.003·(t − 1)``;
* after task 1 the basis is the top ``r`` left singular vectors of ``R``, with ``r`` the number of
  directions whose cumulative energy share stays *below* ``ε_1`` (paper Eq. 5; the code's count);
* after a later task, the part of ``R`` outside the basis, ``R̂ = R − M Mᵀ R``, is decomposed and
  its top directions are added until the energy of ``R`` inside the grown basis reaches ``ε_t``
  (paper Eqs. 8–9);
* plain SGD without momentum (the official optimizer is ``SGD(lr)``; the default
  ``momentum=0.0`` here, and the course's benchmarks use that default).

Differences kept as switches, to measure them: ``momentum`` (the course's earlier version used
0.9), ``basis="pooled"`` (one energy rule on the covariance of all samples of all tasks so far,
Adam-NSCL's Eq. 4, instead of a basis grown task by task) and ``samples=None`` (every training
sample instead of 125).

Differences not switched: the official CIFAR-100 code forwards 125 samples but builds the
representation matrices of its three convolutions from the patches of only the first 24, 100 and
100 of them (its fully connected layers use all 125); here every layer uses all ``samples``. Its
batch norm uses batch statistics also at test time (``track_running_stats=False``) and has its
affine parameters' gradients zeroed after task 1; here :meth:`GPM.before_task` freezes both the
affine parameters and the running statistics after task 1. Its schedule was written for ten
tasks (``ε`` at most 0.997); on a longer sequence ``ε_t`` reaches 1 after task 11 and is held
there, and from then on a layer's basis grows until it holds every direction the task's samples
touch. The official training loop also lowers the learning rate when the validation loss stalls
and keeps the best epoch; the course trains a fixed number of epochs for every method.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from nullspace.capture import layer_input_rows
from nullspace.continual.arguments import check_choice, check_fraction, check_int, check_number
from nullspace.continual.benchmarks import Task
from nullspace.continual.feature_covariance import TaskCovariances
from nullspace.continual.methods.base import ContinualMethod
from nullspace.continual.models import ContinualModel
from nullspace.linalg import EnergyRule, NullSpace

__all__ = ["GPM", "GradientProjectionSGD", "grow_basis"]


class GradientProjectionSGD(torch.optim.SGD):
    """SGD whose gradients first lose their component in the span of per-parameter bases ``M``
    (orthonormal columns, shape ``(d, r)``; weights viewed as ``(out, d)``): ``g ← g − g M Mᵀ``.

    The protected span is given either as ``bases`` (GPM's memory ``M``) or as ``null_spaces``
    (:class:`~nullspace.linalg.NullSpace` objects, whose projection keeps the null-space part of the
    gradient, the same step; lesson 2 uses this form). A parameter may appear in only one of them.
    """

    def __init__(self, params: Iterable[nn.Parameter] | Iterable[dict], lr: float,
                 bases: Mapping[nn.Parameter, torch.Tensor] | None = None, momentum: float = 0.0,
                 null_spaces: Mapping[nn.Parameter, NullSpace] | None = None) -> None:
        check_number(lr, "lr", positive=True, hint="SGD's learning rate.")
        check_fraction(momentum, "momentum", hint="0 for plain SGD, as GPM's official code.")
        super().__init__(params, lr=lr, momentum=momentum)
        self.bases = {p: basis.to(dtype=p.dtype, device=p.device) for p, basis in (bases or {}).items()}
        self.null_spaces = {p: space.to(p) for p, space in (null_spaces or {}).items()}
        if any(p in self.bases for p in self.null_spaces):
            raise ValueError("GradientProjectionSGD: a parameter is in both bases and null_spaces; give each "
                             "parameter's protected span once (a basis M, or a NullSpace)")

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        for p, basis in self.bases.items():
            if p.grad is not None:
                g = p.grad.view(p.shape[0], -1)
                g.sub_((g @ basis) @ basis.T)
        for p, space in self.null_spaces.items():
            if p.grad is not None:
                p.grad.copy_(space.project(p.grad.view(p.shape[0], -1)).view_as(p))
        return super().step(closure)


def grow_basis(basis: torch.Tensor | None, gram: torch.Tensor, threshold: float) -> torch.Tensor:
    """GPM's basis update from a task's Gram matrix ``R Rᵀ`` (``(d, d)``, float64).

    With no basis yet, keep the top directions of ``R`` whose cumulative energy share stays below
    ``threshold``; otherwise add the top directions of ``R̂ = R − M Mᵀ R`` until the share of
    ``R``'s energy inside the basis reaches ``threshold``. Working with ``R Rᵀ`` gives the same
    directions and energies as the SVD of ``R`` (its eigenvalues are the squared singular values).
    Returns the new basis ``(d, r)``, at most ``d`` columns.
    """
    total = float(torch.trace(gram))
    if total <= 0:
        return basis if basis is not None else gram.new_zeros(gram.shape[0], 0)
    if basis is None or basis.shape[1] == 0:
        energies, vectors = torch.linalg.eigh(gram)
        energies, vectors = energies.flip(0).clamp_min(0), vectors.flip(1)
        kept = int((torch.cumsum(energies, 0) / total < threshold).sum())
        return vectors[:, :kept].contiguous()
    outside = torch.eye(gram.shape[0], dtype=gram.dtype) - basis @ basis.T
    residual = outside @ gram @ outside
    energies, vectors = torch.linalg.eigh((residual + residual.T) / 2)
    energies, vectors = energies.flip(0).clamp_min(0), vectors.flip(1)
    accumulated = (total - float(torch.trace(residual))) / total
    added = 0
    for energy in energies.tolist():
        if accumulated >= threshold:
            break
        accumulated += energy / total
        added += 1
    grown = torch.cat([basis, vectors[:, :added]], dim=1)
    return grown[:, :gram.shape[0]].contiguous()


class GPM(ContinualMethod):
    """Plain SGD; from task 2 on, gradients projected off the earlier tasks' input bases.

    Args:
        lr: SGD's learning rate; ``momentum`` SGD's momentum (0 in the official code).
        base_threshold, threshold_step: ``ε_t = base_threshold + threshold_step·(t − 1)`` after
            task ``t`` (0.97 and 0.003 on CIFAR-100 in the paper).
        samples: random training samples per task in the representation matrix (125 in the
            official code), or None for all of them.
        basis: ``"grown"`` (the paper) or ``"pooled"`` (see the module docstring).
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, base_threshold: float = 0.97,
                 threshold_step: float = 0.003, samples: int | None = 125, basis: str = "grown",
                 label: str | None = None) -> None:
        self.lr = check_number(lr, "lr", positive=True, hint="SGD's learning rate.")
        self.momentum = check_fraction(momentum, "momentum", hint="0 for plain SGD, as GPM's official code.")
        self.base_threshold = check_fraction(base_threshold, "base_threshold", closed=True,
                                             hint="The share of each layer's input energy to protect (0.97).")
        self.threshold_step = check_number(threshold_step, "threshold_step")
        self.samples = None if samples is None else check_int(samples, "samples")
        self.basis_kind = check_choice(basis, "basis", ("grown", "pooled"))
        self.bases: dict[str, torch.Tensor] = {}
        self.covariances = TaskCovariances()
        self.name = f"GPM ({label})" if label else "GPM"

    def threshold(self, task_index: int) -> float:
        """``ε`` used after the task with 0-based index ``task_index``."""
        return min(1.0, self.base_threshold + self.threshold_step * task_index)

    def before_task(self, model: ContinualModel, task: Task) -> None:
        if task.index > 0:
            model.check_shared_layers_have_no_bias()
            model.freeze_normalisation()

    def optimizer(self, model: ContinualModel, task: Task, shared: list[nn.Parameter],
                  head: list[nn.Parameter]) -> torch.optim.Optimizer:
        layers = model.shared_layers()
        bases = {layers[name].weight: basis for name, basis in self.bases.items()} if task.index > 0 else {}
        return GradientProjectionSGD(shared + head, lr=self.lr, momentum=self.momentum, bases=bases)

    def after_task(self, model: ContinualModel, task: Task) -> None:
        threshold = self.threshold(task.index)
        if self.basis_kind == "pooled":
            self.covariances.add_task(model, task)
            rule = EnergyRule(threshold)
            self.bases = {name: ns.range_basis for name, ns in self.covariances.null_spaces(rule).items()}
            return
        for name, gram in self.representation_grams(model, task).items():
            self.bases[name] = grow_basis(self.bases.get(name), gram, threshold)

    @torch.no_grad()
    def representation_grams(self, model: ContinualModel, task: Task) -> dict[str, torch.Tensor]:
        """``R Rᵀ`` per shared layer, ``R`` the layer's input rows (as columns) for ``samples``
        random training samples of ``task`` (float64, ``(d, d)``)."""
        chosen = torch.randperm(len(task.train_x))
        chosen = chosen[:self.samples] if self.samples is not None else chosen
        layers = model.shared_layers()
        grams: dict[str, torch.Tensor] = {}
        was_training = model.training
        model.eval()
        where = next(model.parameters()).device

        def make_hook(name: str):
            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
                rows = layer_input_rows(module, inputs[0]).double()
                grams[name] = grams.get(name, 0) + (rows.T @ rows).cpu()
            return hook

        handles = [layer.register_forward_hook(make_hook(name)) for name, layer in layers.items()]
        try:
            for batch in chosen.split(256):
                model(task.train_x[batch].to(where), task.index)
        finally:
            for handle in handles:
                handle.remove()
        model.train(was_training)
        return grams
