"""The null-space core: accumulation (Adam-NSCL Eq. 4), projectors (Eq. 6 / AlphaEdit Eq. 9),
selection rules and the errors users see."""

import numpy as np
import pytest
import torch

from nullspace.linalg import (
    AbsoluteRule,
    CovarianceAccumulator,
    EmptyNullSpaceError,
    EnergyRule,
    MinRatioRule,
    RelativeRule,
    null_space,
    null_space_projector,
    validate_covariance,
)


def rank_deficient_inputs(n=200, d=12, rank=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, d, generator=g, dtype=torch.float64)


def diagonal_covariance(values, seed=0):
    """A covariance with a known spectrum, rotated so the rules cannot rely on the axes."""
    q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return q @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ q.T


# --- accumulation -------------------------------------------------------------------------------

def test_accumulator_matches_direct_covariance_in_float64():
    x = rank_deficient_inputs()
    acc = CovarianceAccumulator(12)
    for batch in x.split(37):
        acc.update(batch.float())
    direct = x.float().double().T @ x.float().double() / len(x)
    assert acc.count == 200
    assert acc.covariance.dtype == torch.float64
    torch.testing.assert_close(acc.covariance, direct, rtol=1e-12, atol=1e-12)


def test_merge_is_the_sample_weighted_average_of_eq4():
    x1, x2 = rank_deficient_inputs(n=50, seed=1), rank_deficient_inputs(n=150, seed=2)
    a, b = CovarianceAccumulator(12), CovarianceAccumulator(12)
    a.update(x1)
    b.update(x2)
    merged = a.merge(b)
    eq4 = (50 / 200) * a.covariance + (150 / 200) * b.covariance
    torch.testing.assert_close(merged.covariance, eq4, rtol=1e-12, atol=1e-12)
    assert (a.count, b.count) == (50, 150)  # merge does not mutate its operands


@pytest.mark.bad_input
def test_accumulator_accepts_numpy_and_rejects_bad_batches():
    acc = CovarianceAccumulator(3)
    acc.update(np.eye(3))
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        acc.update(torch.ones(4, 5))
    with pytest.raises(ValueError, match="NaN or Inf"):
        acc.update(torch.tensor([[1.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="no samples"):
        _ = CovarianceAccumulator(3).covariance


# --- projector properties ------------------------------------------------------------------------

def test_projector_is_symmetric_idempotent_and_annihilates_inputs():
    x = rank_deficient_inputs()
    cov = x.T @ x / len(x)
    ns = null_space(cov, RelativeRule(1e-10))
    p = ns.projector()
    assert ns.null_dim == 12 - 5
    assert torch.max(torch.abs(p - p.T)) <= 1e-10
    assert torch.max(torch.abs(p @ p - p)) <= 1e-10
    assert torch.linalg.norm(x @ p) / torch.linalg.norm(x) <= 1e-10


def test_low_rank_project_equals_dense_projector_both_ways():
    x = rank_deficient_inputs()
    cov = x.T @ x / len(x)
    update = torch.randn(7, 12, dtype=torch.float64)
    for ratio in (1e-10, 0.5):  # null space larger than range, then smaller
        ns = null_space(cov, RelativeRule(ratio))
        torch.testing.assert_close(ns.project(update), update @ ns.projector(), rtol=1e-10, atol=1e-10)


def test_projected_update_leaves_layer_outputs_unchanged():
    x = rank_deficient_inputs()
    w = torch.randn(4, 12, dtype=torch.float64)
    delta = torch.randn(4, 12, dtype=torch.float64)
    ns = null_space(x.T @ x, RelativeRule(1e-10))
    before = x @ w.T
    assert torch.linalg.norm(x @ (w + delta).T - before) / torch.linalg.norm(before) > 0.1
    after = x @ (w + ns.project(delta)).T
    assert torch.linalg.norm(after - before) / torch.linalg.norm(before) <= 1e-10


# --- selection rules on a hand-computed spectrum -------------------------------------------------

SPECTRUM = [1e-9, 2e-9, 1e-4, 5e-3, 0.03, 0.5, 2.0, 7.46]  # sums to 9.9951 (to 1e-8)


@pytest.mark.parametrize("rule, expected_null_dim", [
    (MinRatioRule(a=10), 2),          # λ ≤ 1e-8: the two noise-level eigenvalues
    (MinRatioRule(a=1e5), 3),         # λ ≤ 1e-4
    (AbsoluteRule(2e-2), 4),          # λ < 0.02
    (AbsoluteRule(1e-2), 4),
    (RelativeRule(1e-3), 4),          # λ ≤ 7.46e-3
    (RelativeRule(1e-2), 5),          # λ ≤ 0.0746
    (EnergyRule(0.99), 5),            # top 3 hold 9.96/9.9951 = 0.9965; top 2 only 0.9465
    (EnergyRule(0.999), 4),           # top 4 hold 9.99/9.9951 = 0.99949; top 3 only 0.9965
    (EnergyRule(0.9), 6),             # top 2 hold 0.9465; top 1 only 0.7464
    (EnergyRule(1.0), 0),             # everything protected
])
def test_rules_against_a_hand_computed_spectrum(rule, expected_null_dim):
    cov = diagonal_covariance(SPECTRUM)
    ns = null_space(cov, rule, allow_empty=True)
    assert ns.null_dim == expected_null_dim
    assert torch.allclose(ns.eigenvalues, torch.tensor(SPECTRUM, dtype=torch.float64), atol=1e-12)
    # the null directions are the smallest eigenvalues, in order
    assert ns.mask.tolist() == [True] * expected_null_dim + [False] * (8 - expected_null_dim)


def test_discarded_mass_and_summary():
    ns = null_space(diagonal_covariance(SPECTRUM), RelativeRule(1e-2))
    expected = sum(SPECTRUM[:5]) / sum(SPECTRUM)
    assert ns.discarded_mass == pytest.approx(expected, rel=1e-9)
    summary = ns.summary()
    assert summary["null_dim"] == 5 and summary["dim"] == 8
    assert summary["lambda_max"] == pytest.approx(7.46)


def test_min_ratio_rule_collapses_on_a_rank_deficient_covariance():
    """The caveat of REFERENCE §1: λ_min is float noise, so a·λ_min keeps only noise directions."""
    x = rank_deficient_inputs(d=64, rank=10).float()
    cov = (x.T @ x / len(x)).double()  # a float32 covariance, like the official code's
    exact_null_dim = 64 - 10
    assert null_space(cov, MinRatioRule(10)).null_dim < exact_null_dim
    assert null_space(cov, RelativeRule(1e-5)).null_dim == exact_null_dim


# --- errors that say what to do ------------------------------------------------------------------

@pytest.mark.bad_input
def test_non_square_matrix_is_rejected_with_advice():
    with pytest.raises(ValueError, match=r"square \(d, d\).*X.T @ X / n"):
        null_space(torch.ones(5, 3), RelativeRule())


@pytest.mark.bad_input
def test_non_symmetric_matrix_is_rejected():
    with pytest.raises(ValueError, match="not symmetric"):
        validate_covariance(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))


@pytest.mark.bad_input
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_and_inf_are_rejected(bad):
    c = torch.eye(3)
    c[1, 1] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        null_space(c, RelativeRule())


@pytest.mark.parametrize("make_rule", [lambda: MinRatioRule(-1), lambda: AbsoluteRule(-0.1),
                                       lambda: RelativeRule(float("nan")), lambda: EnergyRule(0.0),
                                       lambda: EnergyRule(1.5)])
@pytest.mark.bad_input
def test_negative_or_out_of_range_thresholds_are_rejected(make_rule):
    with pytest.raises(ValueError, match="must"):
        make_rule()


@pytest.mark.bad_input
def test_a_rule_that_selects_nothing_names_the_rule_and_the_spectrum():
    cov = diagonal_covariance([1.0, 2.0, 3.0])
    with pytest.raises(EmptyNullSpaceError, match=r"λ < 0.02.*3 eigenvalues, min 1, median 2, max 3"):
        null_space(cov, AbsoluteRule(2e-2))
    assert null_space(cov, AbsoluteRule(2e-2), allow_empty=True).null_dim == 0


@pytest.mark.bad_input
def test_project_rejects_mismatched_update():
    ns = null_space(diagonal_covariance(SPECTRUM), RelativeRule())
    with pytest.raises(ValueError, match="last dimension must be the input dimension 8"):
        ns.project(torch.ones(3, 9))


def test_null_space_projector_shortcut():
    cov = diagonal_covariance(SPECTRUM)
    torch.testing.assert_close(null_space_projector(cov, AbsoluteRule()),
                               null_space(cov, AbsoluteRule()).projector())
