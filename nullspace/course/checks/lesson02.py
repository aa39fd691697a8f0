"""Checks for lesson 2, the null space of a layer. Each compares the learner's function with the
package's tested version on fresh random inputs."""

from __future__ import annotations

import torch
from torch import nn

from nullspace.capture import layer_input_rows
from nullspace.course.verdict import exercise_check
from nullspace.linalg import CovarianceAccumulator, RelativeRule, null_space

__all__ = ["exercise_2_1", "exercise_2_2", "exercise_2_3", "exercise_2_4", "exercise_2_5"]


def _rank_deficient_rows(n: int, d: int, rank: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, d, generator=g,
                                                                                 dtype=torch.float64)


@exercise_check("2.1", "uncentered covariance")
def exercise_2_1(uncentered_covariance) -> str:
    rows = _rank_deficient_rows(57, 9, 4, seed=21)
    got = uncentered_covariance(rows)
    acc = CovarianceAccumulator(9)
    acc.update(rows)
    assert tuple(got.shape) == (9, 9), f"expected a (d, d) = (9, 9) matrix, got shape {tuple(got.shape)}."
    centred = (rows - rows.mean(0)).T @ (rows - rows.mean(0)) / len(rows)
    assert not torch.allclose(got.double(), centred, atol=1e-8), \
        "you subtracted the mean: Adam-NSCL uses the *uncentered* covariance XᵀX / n."
    assert torch.allclose(got.double(), acc.covariance, rtol=1e-6, atol=1e-8), \
        "XᵀX / n differs from the reference: rows are samples, so it is X.T @ X divided by n."
    return "matches CovarianceAccumulator."


@exercise_check("2.2", "null-space basis")
def exercise_2_2(null_space_basis) -> str:
    rows = _rank_deficient_rows(80, 12, 5, seed=22)
    covariance = rows.T @ rows / len(rows)
    basis = null_space_basis(covariance, 1e-8).double()
    reference = null_space(covariance, RelativeRule(1e-8))
    assert basis.shape == (12, reference.null_dim), \
        f"expected a (d, k) = (12, {reference.null_dim}) basis (one column per null direction), got {tuple(basis.shape)}."
    assert torch.allclose(basis.T @ basis, torch.eye(basis.shape[1], dtype=torch.float64), atol=1e-8), \
        "the columns are not orthonormal: take them from torch.linalg.eigh."
    assert torch.allclose(basis @ basis.T, reference.projector(), atol=1e-8), \
        "your basis spans a different space: keep the eigenvectors whose eigenvalue is ≤ ratio·λ_max."
    return f"{reference.null_dim} null directions out of 12, as expected for rank-5 inputs."


@exercise_check("2.3", "unfold a convolution's inputs")
def exercise_2_3(conv_input_rows) -> str:
    torch.manual_seed(23)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=2, bias=False)
    x = torch.randn(2, 3, 11, 10)
    got = conv_input_rows(conv, x)
    expected = layer_input_rows(conv, x)
    assert tuple(got.shape) == tuple(expected.shape), \
        f"expected shape {tuple(expected.shape)} (one row per output position, C·k·k columns), got {tuple(got.shape)}."
    assert torch.allclose(got, expected, atol=1e-6), \
        "rows differ: unfold with the conv's own kernel_size, dilation, padding and stride, then move the " \
        "C·k·k axis last."
    y = conv(x).permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.allclose(got @ conv.weight.view(4, -1).T, y, atol=1e-5)
    return "your rows times the weight viewed as (out, C·k·k) reproduce the convolution."


@exercise_check("2.4", "covariance across tasks (Eq. 4)")
def exercise_2_4(merge_covariances) -> str:
    a, b = _rank_deficient_rows(30, 6, 3, seed=24), _rank_deficient_rows(90, 6, 4, seed=25)
    acc_a, acc_b = CovarianceAccumulator(6), CovarianceAccumulator(6)
    acc_a.update(a)
    acc_b.update(b)
    got = merge_covariances(acc_a.covariance, 30, acc_b.covariance, 90)
    expected = acc_a.merge(acc_b).covariance
    plain_mean = (acc_a.covariance + acc_b.covariance) / 2
    assert not torch.allclose(got.double(), plain_mean, atol=1e-8), \
        "that is the plain mean of the two covariances: Eq. 4 weights each by its number of samples."
    assert torch.allclose(got.double(), expected, atol=1e-8), "the merged covariance differs from Eq. 4."
    return "equals the covariance of all 120 samples together."


@exercise_check("2.5", "low-rank projection")
def exercise_2_5(project_rows) -> str:
    rows = _rank_deficient_rows(70, 20, 16, seed=26)
    ns = null_space(rows.T @ rows / len(rows), RelativeRule(1e-8))
    update = torch.randn(7, 20, generator=torch.Generator().manual_seed(27), dtype=torch.float64)
    got = project_rows(update, ns.range_basis)
    assert tuple(got.shape) == (7, 20), f"expected shape (7, 20), got {tuple(got.shape)}."
    assert torch.allclose(got.double(), update @ ns.projector(), atol=1e-8), \
        "the result differs from update @ P: subtract (update @ U1) @ U1ᵀ."
    assert torch.allclose(rows @ got.double().T, torch.zeros(70, 7, dtype=torch.float64), atol=1e-8)
    return "equals update @ P without forming the 20×20 projector."
