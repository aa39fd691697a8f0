"""Checks for lesson 3, forgetting: the metrics on accuracy matrices, the EWC penalty and the LwF
distillation loss."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nullspace.continual import metrics
from nullspace.course.verdict import exercise_check

__all__ = ["exercise_3_1", "exercise_3_2", "exercise_3_3", "exercise_3_4", "exercise_3_5"]


def _random_accuracy_matrix(tasks: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.full((tasks, tasks), np.nan)
    for i in range(tasks):
        r[i, :i + 1] = rng.uniform(40, 100, i + 1).round(1)
    return r


@exercise_check("3.1", "average accuracy")
def exercise_3_1(average_accuracy) -> str:
    for seed, tasks in ((31, 5), (32, 3)):
        r = _random_accuracy_matrix(tasks, seed)
        got, expected = float(average_accuracy(r)), metrics.average_accuracy(r)
        assert abs(got - expected) < 1e-9, \
            f"got {got:.3f}, expected {expected:.3f}: ACC averages the last row (after the last task)."
    return ""


@exercise_check("3.2", "backward transfer")
def exercise_3_2(backward_transfer) -> str:
    r = _random_accuracy_matrix(5, 33)
    got, expected = float(backward_transfer(r)), metrics.backward_transfer(r)
    divided_by_t = expected * 4 / 5
    assert abs(got - divided_by_t) > 1e-9 or abs(got - expected) < 1e-9, \
        "you divided by T: BWT averages over the T − 1 earlier tasks."
    assert abs(got - expected) < 1e-9, \
        f"got {got:.3f}, expected {expected:.3f}: average R[T-1, j] − R[j, j] over j < T − 1."
    return ""


@exercise_check("3.3", "forgetting")
def exercise_3_3(forgetting) -> str:
    r = _random_accuracy_matrix(6, 34)
    got, expected = float(forgetting(r)), metrics.forgetting(r)
    assert abs(got - expected) < 1e-9, \
        f"got {got:.3f}, expected {expected:.3f}: for each j < T − 1 take the best R[l, j] over l < T − 1 " \
        "minus the final R[T-1, j], then average."
    return ""


@exercise_check("3.4", "EWC penalty")
def exercise_3_4(ewc_penalty) -> str:
    g = torch.Generator().manual_seed(35)
    params = {"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g)}
    anchors = {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in params.items()}
    fisher = {k: torch.rand(v.shape, generator=g) for k, v in params.items()}
    got = float(ewc_penalty(params, anchors, fisher, 7.0))
    expected = 0.5 * 7.0 * sum(float((fisher[k] * (params[k] - anchors[k]) ** 2).sum()) for k in params)
    assert abs(got - expected) <= 1e-5 * abs(expected), \
        f"got {got:.5f}, expected {expected:.5f}: λ/2 · Σ_i F_i (θ_i − θ*_i)² over every parameter tensor."
    return ""


@exercise_check("3.5", "distillation loss")
def exercise_3_5(distillation_loss) -> str:
    g = torch.Generator().manual_seed(36)
    new, old = torch.randn(8, 3, generator=g), torch.randn(8, 3, generator=g)
    got = float(distillation_loss(new, old, 2.0))
    expected = float(4.0 * F.kl_div(F.log_softmax(new / 2, 1), F.log_softmax(old / 2, 1), log_target=True,
                                    reduction="batchmean"))
    assert abs(float(distillation_loss(old, old, 2.0))) < 1e-6, "the loss must be zero when the outputs agree."
    assert abs(got - expected) <= 1e-5 * abs(expected), \
        f"got {got:.5f}, expected {expected:.5f}: T² · KL(softmax(old/T) ‖ softmax(new/T)), averaged over the batch."
    return ""
