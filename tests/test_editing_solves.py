"""The fast paths equal the plain formulas: AlphaEdit's push-through form, MEMIT on live units,
the float32 thin projector; and the editor keeps only what its solve reads."""

import numpy as np
import pytest
import torch

from nullspace.editing.methods import alphaedit as alphaedit_module
from nullspace.editing.methods.alphaedit import alphaedit_push_through, alphaedit_update
from nullspace.editing.methods.memit import memit_update, solve_symmetric_psd
from nullspace.linalg import AbsoluteRule, RelativeRule, null_space
from nullspace.projector import fast_projector, thin_projector


def decaying_covariance(d: int, n: int, seed: int, decades: float = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.logspace(0, -decades, d, dtype=torch.float64)
    return x.T @ x / n


def eq14(k1, r, p, kp, l2):
    """Eq. 14 as the official code solves it: Δᵀ = (P (K1K1ᵀ + KpKpᵀ) + L2 I)⁻¹ P K1 Rᵀ."""
    d = p.shape[0]
    system = p @ (k1.T @ k1 + kp.T @ kp) + l2 * torch.eye(d, dtype=torch.float64)
    return torch.linalg.solve(system, p @ k1.T @ r).T


@pytest.mark.parametrize("l2", [1.0, 10.0])
def test_push_through_equals_eq14(l2):
    d, u, n_earlier = 60, 5, 30
    g = torch.Generator().manual_seed(1)
    p = null_space(decaying_covariance(d, 200, 0), RelativeRule(1e-3)).projector()
    k1 = torch.randn(u, d, generator=g, dtype=torch.float64)
    kp = torch.randn(n_earlier, d, generator=g, dtype=torch.float64)
    r = torch.randn(u, 7, generator=g, dtype=torch.float64)
    expected = eq14(k1, r, p, kp, l2)
    scale = float(expected.abs().max())
    pushed = alphaedit_update(k1, r, p, l2_weight=l2, earlier_keys=kp)
    assert float((pushed - expected).abs().max()) <= 1e-14 * max(scale, 1.0)
    square = alphaedit_update(k1, r, p, l2_weight=l2, edited_covariance=kp.T @ kp)
    assert float((square - expected).abs().max()) <= 1e-14 * max(scale, 1.0)
    thin = alphaedit_update(k1, r, thin_projector(null_space(decaying_covariance(d, 200, 0), RelativeRule(1e-3)),
                                                   torch.float64), l2_weight=l2, earlier_keys=kp)
    assert float((thin - expected).abs().max()) <= 1e-13 * max(scale, 1.0)
    direct = alphaedit_push_through(r, torch.cat([k1, kp]) @ p, torch.cat([k1, kp]), l2)
    assert float((direct - expected).abs().max()) <= 1e-14 * max(scale, 1.0)


def test_past_the_crossover_the_square_form_is_used(monkeypatch):
    d = 20
    g = torch.Generator().manual_seed(2)
    p = null_space(decaying_covariance(d, 100, 3), RelativeRule(1e-2)).projector()
    k1, kp = torch.randn(4, d, generator=g, dtype=torch.float64), torch.randn(30, d, generator=g, dtype=torch.float64)
    r = torch.randn(4, 3, generator=g, dtype=torch.float64)
    calls = []
    real = alphaedit_module.alphaedit_push_through
    monkeypatch.setattr(alphaedit_module, "alphaedit_push_through", lambda *a, **k: calls.append(1) or real(*a, **k))
    delta = alphaedit_update(k1, r, p, l2_weight=10.0, earlier_keys=kp)  # N = 34 > d = 20
    assert calls == []
    assert torch.allclose(delta, eq14(k1, r, p, kp, 10.0), rtol=1e-12, atol=1e-14)
    alphaedit_update(k1, r, p, l2_weight=10.0, earlier_keys=kp[:5])
    assert calls == [1]


def test_memit_with_dead_units_needs_no_pinv(monkeypatch):
    d = 30
    c0 = decaying_covariance(d, 300, 4, decades=1)
    dead = [3, 17]
    c0[dead] = 0
    c0[:, dead] = 0
    g = torch.Generator().manual_seed(5)
    k1 = torch.randn(6, d, generator=g, dtype=torch.float64)
    k1[:, dead] = 0
    r = torch.randn(6, 4, generator=g, dtype=torch.float64)
    expected = (r.T @ k1) @ torch.linalg.pinv(2.0 * c0 + k1.T @ k1, hermitian=True)
    monkeypatch.setattr(torch.linalg, "pinv", lambda *a, **k: pytest.fail("pinv was called"))
    delta = memit_update(k1, r, c0, covariance_weight=2.0)
    assert torch.allclose(delta, expected, rtol=1e-9, atol=1e-12)
    assert float(delta[:, dead].abs().max()) == 0.0


def test_symmetric_solve_falls_back_only_when_needed():
    g = torch.Generator().manual_seed(6)
    a = torch.randn(8, 8, generator=g, dtype=torch.float64)
    spd = a @ a.T + torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, 2, generator=g, dtype=torch.float64)
    assert torch.allclose(solve_symmetric_psd(spd, b), torch.linalg.solve(spd, b), rtol=1e-12, atol=1e-12)
    indefinite = spd - 20 * torch.eye(8, dtype=torch.float64)  # Cholesky fails, LU works
    assert torch.allclose(solve_symmetric_psd(indefinite, b), torch.linalg.solve(indefinite, b), rtol=1e-10)
    rank_one = torch.ones(4, 4, dtype=torch.float64)  # LU fails too: minimum-norm solution
    x = solve_symmetric_psd(rank_one, torch.ones(4, 1, dtype=torch.float64))
    assert torch.allclose(x, torch.full((4, 1), 0.25, dtype=torch.float64))


@pytest.mark.parametrize("rank", [0, 6, 70])
def test_fast_projector_matches_the_float64_projector(rank):
    d = 80
    if rank:
        g = torch.Generator().manual_seed(7)
        x = torch.randn(rank, d, generator=g, dtype=torch.float64)
        covariance = x.T @ x / rank
    else:
        covariance = decaying_covariance(d, 400, 8)
    rule = AbsoluteRule(1e-3)
    exact = null_space(covariance, rule)
    fast = fast_projector(covariance, rule)
    assert fast.null_dim == exact.null_dim
    assert fast.dtype == torch.float32
    assert fast.factor.shape[1] == min(exact.null_dim, d - exact.null_dim)  # the thinner factor only
    assert float((fast.dense().double() - exact.projector()).abs().max()) < 1e-4
    rows = torch.randn(3, d, dtype=torch.float64)
    assert torch.allclose(fast.project(rows).double(), rows @ exact.projector(), atol=1e-4)
    fast64 = fast_projector(covariance, rule, dtype=torch.float64)
    assert float((fast64.dense() - exact.projector()).abs().max()) < 1e-10


@pytest.mark.parametrize("spectrum, dtype, tolerance", [
    ([0.0, 1e-3, 2e-3, 3.0, 5.0, 6.0], torch.float32, 1e-5),  # the null side kept: one run of the ascending λ
    # a round-off negative λ beyond the cut in |λ|: the kept range side is λ[0] and λ[4], not one run
    ([-2e-2, 1e-3, 2e-3, 3e-3, 5000.0], torch.float64, 1e-10),
])
def test_fast_projector_keeps_the_right_eigenvectors(spectrum, dtype, tolerance):
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), generator=g, dtype=torch.float64))
    matrix = q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T
    matrix = (matrix + matrix.T) / 2
    rule = AbsoluteRule(1e-2)
    exact = null_space(matrix, rule)
    fast = fast_projector(matrix, rule, dtype=dtype)
    assert fast.null_dim == exact.null_dim == sum(abs(v) < 1e-2 for v in spectrum)
    assert float((fast.dense().double() - exact.projector()).abs().max()) < tolerance


def test_fast_projector_falls_back_to_inverse_iteration_where_mrrr_fails(monkeypatch):
    import scipy.linalg

    tridiagonal_eigh = scipy.linalg.eigh_tridiagonal

    def mrrr_fails(*args, lapack_driver="auto", **kwargs):
        if lapack_driver == "stemr":
            raise np.linalg.LinAlgError("stemr (eigh_tridiagonal) did not converge (LAPACK info=22)")
        return tridiagonal_eigh(*args, lapack_driver=lapack_driver, **kwargs)

    monkeypatch.setattr(scipy.linalg, "eigh_tridiagonal", mrrr_fails)
    for rank in (6, 70):  # the range side kept; the null side (a cluster at 0) kept
        x = torch.randn(rank, 80, generator=torch.Generator().manual_seed(rank), dtype=torch.float64)
        covariance = x.T @ x / rank
        fast, exact = fast_projector(covariance, AbsoluteRule(1e-3)), null_space(covariance, AbsoluteRule(1e-3))
        assert float((fast.dense().double() - exact.projector()).abs().max()) < 1e-4


def test_fast_projector_refuses_a_matrix_that_is_not_positive_semidefinite():
    matrix = torch.diag(torch.tensor([-5.0, 1e-3, 3.0], dtype=torch.float64))
    for make in (fast_projector, null_space):
        with pytest.raises(ValueError, match="not positive semi-definite.*-5"):
            make(matrix, AbsoluteRule(1e-2))
    empty = fast_projector(torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64)), AbsoluteRule(1e-2),
                           allow_empty=True)
    assert empty.null_dim == 0 and empty.factor.shape == (2, 0) and torch.equal(empty.dense(), torch.zeros(2, 2))


def test_fast_projector_warns_when_float32_cannot_resolve_the_cut():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(6, 80, generator=g, dtype=torch.float64)
    with pytest.warns(UserWarning, match="float32 round-off"):
        fast_projector(x.T @ x / 6, AbsoluteRule(1e-6))
