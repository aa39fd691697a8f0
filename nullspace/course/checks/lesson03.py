"""Checks for lesson 3, forgetting: the metrics on accuracy matrices, the EWC penalty, the
diagonal Fisher of EWC and the LwF distillation loss."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from nullspace.continual import metrics
from nullspace.continual.benchmarks import Task
from nullspace.continual.methods.ewc import diagonal_fisher
from nullspace.continual.models import model_for
from nullspace.course.verdict import exercise_check

__all__ = ["exercise_3_1", "exercise_3_2", "exercise_3_3", "exercise_3_4", "exercise_3_5", "exercise_3_6"]


def _random_accuracy_matrix(tasks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.full((tasks, tasks), np.nan)
    for i in range(tasks):
        r[i, :i + 1] = rng.uniform(40, 100, i + 1).round(1)
    return r


def _recovering_matrix() -> np.ndarray:
    """Task 1 peaks after task 2, drops, and ends above its diagonal; task 2 ends above its best:
    BWT, forgetting and the last row's mean all differ from their usual mistakes."""
    return np.array([[80.0, np.nan, np.nan, np.nan],
                     [95.0, 90.0, np.nan, np.nan],
                     [60.0, 70.0, 85.0, np.nan],
                     [88.0, 99.0, 50.0, 75.0]])


def _close(got, expected: float, what: str) -> None:
    assert np.isfinite(float(got)), f"got {got}: {what} must be a finite number (mind the NaN above the diagonal)."
    assert abs(float(got) - expected) < 1e-9, f"got {float(got):.3f}, expected {expected:.3f}: {what}"


@exercise_check("3.1", "average accuracy")
def exercise_3_1(average_accuracy) -> str:
    for r in (_random_accuracy_matrix(5, 31), _random_accuracy_matrix(2, 32), _recovering_matrix()):
        _close(average_accuracy(r), metrics.average_accuracy(r),
               "ACC averages the last row, the accuracies after the last task (not the diagonal, not every entry).")
    one = np.array([[73.0]])
    _close(average_accuracy(one), 73.0, "with one task, ACC is its accuracy.")
    return "the last row's mean on four matrices, one task included."


@exercise_check("3.2", "backward transfer")
def exercise_3_2(backward_transfer) -> str:
    for r in (_random_accuracy_matrix(5, 33), _random_accuracy_matrix(2, 34), _recovering_matrix()):
        expected, tasks = metrics.backward_transfer(r), r.shape[0]
        got = float(backward_transfer(r))
        assert abs(got - expected * (tasks - 1) / tasks) > 1e-9 or abs(got - expected) < 1e-9, \
            "you divided by T: BWT averages over the T − 1 earlier tasks (the last one cannot have been forgotten)."
        assert abs(got + expected) > 1e-9 or abs(expected) < 1e-9, \
            "the sign is flipped: BWT is final minus just-learnt, R[T−1, j] − R[j, j] (negative means forgetting)."
        _close(got, expected, "average R[T−1, j] − R[j, j] over j < T − 1.")
    return "matches on three matrices, two tasks and a task that ends above its diagonal included."


@exercise_check("3.3", "forgetting")
def exercise_3_3(forgetting) -> str:
    for r in (_random_accuracy_matrix(6, 35), _recovering_matrix(), _random_accuracy_matrix(2, 36)):
        _close(forgetting(r), metrics.forgetting(r),
               "for each j < T − 1 take the best R[l, j] over the rows l = j … T − 2 (not the diagonal alone, not the "
               "last row), subtract the final R[T−1, j], then average; a task that ends above its best gives a "
               "negative term.")
    return "matches on three matrices, a task that peaks after its own row and one that ends above its best included."


@exercise_check("3.4", "EWC penalty")
def exercise_3_4(ewc_penalty) -> str:
    g = torch.Generator().manual_seed(37)
    params = {"a": torch.randn(3, 4, generator=g).requires_grad_(), "b": torch.randn(5, generator=g).requires_grad_()}
    anchors = {k: v.detach() + 0.3 * torch.randn(v.shape, generator=g) for k, v in params.items()}
    fisher = {k: torch.rand(v.shape, generator=g) * 10 ** torch.randint(-2, 3, v.shape, generator=g)
              for k, v in params.items()}
    for strength in (7.0, 1e3):
        got = ewc_penalty(params, anchors, fisher, strength)
        assert isinstance(got, torch.Tensor) and got.requires_grad, \
            "return a tensor attached to the parameters' graph (no float(), no .item(), no .detach()): " \
            "training differentiates the penalty."
        expected = 0.5 * strength * sum(float((fisher[k] * (params[k].detach() - anchors[k]) ** 2).sum()) for k in params)
        assert abs(float(got) - expected) <= 1e-5 * abs(expected), (
            f"λ = {strength:g}: got {float(got):.5g}, expected {expected:.5g}: λ/2 · Σ_i F_i (θ_i − θ*_i)², over every "
            "parameter tensor (the ½ included).")
    at_anchor = ewc_penalty({k: v.clone().requires_grad_() for k, v in anchors.items()}, anchors, fisher, 7.0)
    assert abs(float(at_anchor)) < 1e-9, "the penalty must vanish at the anchor θ = θ*."
    return "λ/2 · Σ F (θ − θ*)² for two strengths, differentiable, zero at the anchor."


def _fisher_cases():
    """A batch-norm MLP (in train mode, running statistics away from their defaults, one frozen
    normalisation weight) and the course CNN, each with a few fresh samples."""
    torch.manual_seed(38)
    mlp = model_for((1, 4, 4), 3, 3, "mlp")
    with torch.no_grad():
        for _ in range(5):
            mlp(3 * torch.randn(16, 1, 4, 4) + 1, 0)
    mlp.norms[0].weight.requires_grad_(False)
    mlp.train()
    torch.manual_seed(39)
    cnn = model_for((3, 8, 8), 2, 2)
    g = torch.Generator().manual_seed(40)
    return [(mlp, 1, torch.randn(9, 1, 4, 4, generator=g), torch.randint(0, 3, (9,), generator=g)),
            (cnn, 0, torch.randn(5, 3, 8, 8, generator=g), torch.randint(0, 2, (5,), generator=g))]


@exercise_check("3.5", "the diagonal Fisher of EWC", hand_copies=False)
def exercise_3_5(diagonal_fisher_estimate) -> str:
    for model, task_index, x, y in _fisher_cases():
        kind = type(model).__name__
        expected = diagonal_fisher(model, Task(task_index, (), x, y, x, y), max_samples=len(x))
        mine = copy.deepcopy(model)
        before = {name: p.detach().clone() for name, p in mine.named_parameters()}
        got = diagonal_fisher_estimate(mine, task_index, x.clone(), y.clone())
        assert isinstance(got, dict) and set(got) == set(expected), (
            f"{kind}: expected one entry per trainable parameter outside the heads, {sorted(expected)}; got "
            f"{sorted(got) if isinstance(got, dict) else type(got).__name__} (skip parameters with requires_grad "
            "False and every name that starts with 'heads.').")
        for name, value in expected.items():
            assert tuple(got[name].shape) == tuple(value.shape), f"{kind}, {name}: shape {tuple(got[name].shape)}, " \
                                                                 f"expected the parameter's {tuple(value.shape)}."
            scale = float(value.abs().max())
            assert torch.allclose(got[name].detach().float(), value, rtol=1e-4, atol=1e-6 * scale), (
                f"{kind}, {name}: differs from the package's diagonal Fisher by up to "
                f"{float((got[name].detach().float() - value).abs().max()):.3g} (its entries reach {scale:.3g}). "
                "Average over the samples the square of each sample's own gradient of −log p(y | x) through the "
                "task's head, with the model in eval mode (not the square of the batch's gradient).")
        assert mine.training == model.training, "leave the model in the mode it came in (train mode here)."
        assert all(torch.equal(p.detach(), before[n]) for n, p in mine.named_parameters()), \
            "the model's parameters changed: the Fisher only reads gradients."
    return "matches the package on a batch-norm MLP (eval mode, a frozen parameter) and on the course CNN."


@exercise_check("3.6", "distillation loss")
def exercise_3_6(distillation_loss) -> str:
    g = torch.Generator().manual_seed(41)
    new, old = torch.randn(8, 3, generator=g), 3 * torch.randn(8, 3, generator=g)
    assert abs(float(distillation_loss(old, old, 2.0))) < 1e-6, "the loss must be zero when the outputs agree."
    for temperature in (1.0, 4.0):
        got = float(distillation_loss(new, old, temperature))
        expected = float(temperature ** 2 * F.kl_div(F.log_softmax(new / temperature, 1),
                                                     F.log_softmax(old / temperature, 1), log_target=True,
                                                     reduction="batchmean"))
        assert abs(got - expected) <= 1e-5 * abs(expected), (
            f"T = {temperature:g}: got {got:.5f}, expected {expected:.5f}: T² · KL(softmax(old/T) ‖ softmax(new/T)) "
            "(the old outputs are the target distribution), averaged over the batch, with both logits divided by T "
            "and the T² in front.")
    return "T² · KL(old ‖ new) at two temperatures, zero when the outputs agree."
