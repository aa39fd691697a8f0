"""Checks for lesson 4, Adam-NSCL: the projected Adam update (Eq. 6), the share of an update that
reaches old inputs, the paper's a·λ_min rule, and the official code's ‖P‖_F scale."""

from __future__ import annotations

import math

import torch
from torch import nn

from nullspace.continual.methods import AdamNSCL
from nullspace.course.verdict import exercise_check
from nullspace.linalg import MinRatioRule, RelativeRule, null_space

__all__ = ["exercise_4_1", "exercise_4_2", "exercise_4_3", "exercise_4_4"]


def _layer_with_null_space(seed: int):
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(50, 4, generator=g) @ torch.randn(4, 10, generator=g)
    ns = null_space(old.double().T @ old.double(), RelativeRule(1e-9))
    layer = nn.Linear(10, 3, bias=False)
    return layer, ns, g


@exercise_check("4.1", "the projected Adam update (Eq. 6)")
def exercise_4_1(projected_adam_update) -> str:
    torch.manual_seed(41)
    layer, ns, g = _layer_with_null_space(41)
    before = layer.weight.detach().clone()
    optimizer = AdamNSCL(layer.parameters(), null_spaces={layer.weight: ns}, lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        layer(torch.randn(16, 10, generator=g)).pow(2).sum().backward()
        previous = layer.weight.detach().clone()
        optimizer.step()
    state = optimizer.state[layer.weight]
    got = projected_adam_update(state["exp_avg"], state["exp_avg_sq"], state["step"], ns.basis.float(),
                                (0.9, 0.999), 1e-8)
    expected = (previous - layer.weight.detach()) / 0.01
    assert tuple(got.shape) == (3, 10), f"expected the update of the (3, 10) weight, got {tuple(got.shape)}."
    raw = (state["exp_avg"] / (1 - 0.9 ** 3)) / ((state["exp_avg_sq"] / (1 - 0.999 ** 3)).sqrt() + 1e-8)
    assert not torch.allclose(got, raw, atol=1e-5), "this is Adam's update unprojected: multiply by U2 U2ᵀ."
    assert torch.allclose(got, expected, atol=1e-4), \
        "differs from AdamNSCL's step: bias-correct both moments, divide, then project with U2 U2ᵀ."
    assert float((layer.weight.detach() - before).norm()) > 0
    return "matches AdamNSCL.step on a layer with a 6-dimensional null space."


@exercise_check("4.2", "share of an update that reaches old inputs")
def exercise_4_2(range_share) -> str:
    _, ns, g = _layer_with_null_space(42)
    u1 = ns.range_basis
    inside = torch.randn(3, 10, generator=g, dtype=torch.float64) @ ns.projector()
    outside = torch.randn(3, 4, generator=g, dtype=torch.float64) @ u1.T
    for update, expected in ((inside, 0.0), (outside, 1.0), (inside + outside,
                                                             float(outside.norm() / (inside + outside).norm()))):
        got = float(range_share(update, u1))
        assert abs(got - expected) < 1e-6, \
            f"got {got:.4f}, expected {expected:.4f}: ‖update U1‖_F / ‖update‖_F."
    return ""


@exercise_check("4.3", "Adam-NSCL's a·λ_min rule")
def exercise_4_3(min_ratio_null_mask) -> str:
    values = torch.tensor([1e-6, 3e-6, 8e-6, 2e-5, 1e-3, 0.5, 2.0], dtype=torch.float64)
    for a in (10.0, 30.0):
        got = torch.as_tensor(min_ratio_null_mask(values, a))
        expected = MinRatioRule(a).null_mask(values)
        assert got.dtype == torch.bool, "return a boolean mask, one entry per eigenvalue."
        assert torch.equal(got, expected), \
            f"for a = {a:g} expected {expected.tolist()}, got {got.tolist()}: null means λ ≤ a·λ_min."
    return ""


@exercise_check("4.4", "the official code's projector scale")
def exercise_4_4(projector_frobenius_norm) -> str:
    for seed in (44, 45):
        _, ns, _ = _layer_with_null_space(seed)
        got = float(projector_frobenius_norm(ns.basis))
        assert abs(got - math.sqrt(ns.null_dim)) < 1e-6, \
            f"got {got:.4f}; ‖U2 U2ᵀ‖_F = √k = {math.sqrt(ns.null_dim):.4f} for k = {ns.null_dim} null directions."
    return "so P / ‖P‖_F shrinks every projected step by √k."
