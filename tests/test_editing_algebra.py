"""MEMIT (Eq. 15), AlphaEdit (Eq. 14) and ROME match direct transcriptions of the papers."""

import pytest
import torch

from nullspace.editing.methods.alphaedit import alphaedit_update
from nullspace.editing.methods.memit import memit_update
from nullspace.editing.methods.rome import rome_update
from nullspace.linalg import RelativeRule, null_space

D_IN, D_OUT, EDITS, PRESERVED = 24, 10, 5, 60


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    k1 = torch.randn(D_IN, EDITS, generator=g, dtype=torch.float64)        # paper: keys as columns
    r = torch.randn(D_OUT, EDITS, generator=g, dtype=torch.float64)
    kp = torch.randn(D_IN, 7, generator=g, dtype=torch.float64)
    # preserved keys confined to a 14-dimensional subspace: an exact null space of dimension 10
    k0 = torch.randn(D_IN, 14, generator=g, dtype=torch.float64) @ torch.randn(14, PRESERVED, generator=g,
                                                                                dtype=torch.float64)
    w = torch.randn(D_OUT, D_IN, generator=g, dtype=torch.float64)
    return k1, r, kp, k0, w


def test_memit_equals_eq15(problem):
    k1, r, kp, k0, _ = problem
    c0 = k0 @ k0.T / PRESERVED + 0.1 * torch.eye(D_IN, dtype=torch.float64)  # a full-rank corpus moment
    lam = 3.0
    direct = r @ k1.T @ torch.linalg.inv(lam * c0 + k1 @ k1.T + kp @ kp.T)
    ours = memit_update(k1.T, r.T, c0, covariance_weight=lam, edited_covariance=kp @ kp.T)
    assert relative(ours, direct) <= 1e-6


def test_alphaedit_equals_eq14_and_official_solve(problem):
    k1, r, kp, k0, _ = problem
    projector = null_space(k0 @ k0.T, RelativeRule(1e-10)).projector()
    eye = torch.eye(D_IN, dtype=torch.float64)
    eq14 = r @ k1.T @ projector @ torch.linalg.inv(kp @ kp.T @ projector + k1 @ k1.T @ projector + eye)
    ours = alphaedit_update(k1.T, r.T, projector, l2_weight=1.0, edited_covariance=kp @ kp.T)
    assert relative(ours, eq14) <= 1e-6
    l2 = 10.0  # the official solve form, transcribed: solve(P (K1K1ᵀ + Cp) + L2·I, P K1 Rᵀ)ᵀ
    official = torch.linalg.solve(projector @ (k1 @ k1.T + kp @ kp.T) + l2 * eye, projector @ k1 @ r.T).T
    ours_l2 = alphaedit_update(k1.T, r.T, projector, l2_weight=l2, edited_covariance=kp @ kp.T)
    assert relative(ours_l2, official) <= 1e-6


def test_alphaedit_leaves_preserved_outputs_unchanged_with_exact_null_space(problem):
    k1, r, kp, k0, w = problem
    space = null_space(k0 @ k0.T, RelativeRule(1e-10))
    assert space.null_dim == D_IN - 14
    delta = alphaedit_update(k1.T, r.T, space.projector(), l2_weight=10.0, edited_covariance=kp @ kp.T)
    before, after = w @ k0, (w + delta) @ k0
    assert relative(after, before) <= 1e-8
    assert torch.linalg.norm(delta) > 1e-2  # the edit did something


def test_alphaedit_satisfies_normal_equation_eq13(problem):
    k1, r, kp, k0, _ = problem
    p = null_space(k0 @ k0.T, RelativeRule(1e-10)).projector()
    delta = alphaedit_update(k1.T, r.T, p, l2_weight=1.0, edited_covariance=kp @ kp.T)
    lhs = (delta @ k1 - r) @ k1.T @ p + delta + delta @ kp @ kp.T @ p  # Δ = ΔP, so Eq. 13 with ΔP → Δ
    assert float(torch.linalg.norm(lhs)) <= 1e-8 * float(torch.linalg.norm(r @ k1.T))
    assert relative(delta @ p, delta) <= 1e-10


def test_memit_with_huge_lambda_approaches_no_change(problem):
    k1, r, _, k0, _ = problem
    c0 = k0 @ k0.T / PRESERVED + 0.1 * torch.eye(D_IN, dtype=torch.float64)
    small = memit_update(k1.T, r.T, c0, covariance_weight=1e9)
    assert float(torch.linalg.norm(small)) < 1e-6


def test_rome_inserts_the_key_exactly_and_matches_the_formula():
    g = torch.Generator().manual_seed(1)
    keys = torch.randn(200, D_IN, generator=g, dtype=torch.float64)
    c = keys.T @ keys / 200
    k, r = torch.randn(D_IN, generator=g, dtype=torch.float64), torch.randn(D_OUT, generator=g, dtype=torch.float64)
    delta = rome_update(k, r, c, ridge=0.0)
    assert relative(delta @ k, r) <= 1e-10
    left = torch.linalg.inv(c) @ k
    assert relative(delta, torch.outer(r, left) / (left @ k)) <= 1e-8
    bare = k + 0.1 * torch.randn(D_IN, generator=g, dtype=torch.float64)  # the key at the bare prompt
    exact_there = rome_update(k, r, c, insertion_key=bare, ridge=0.0)
    assert relative(exact_there @ bare, r) <= 1e-10


@pytest.mark.bad_input
@pytest.mark.parametrize("bad", ["rows", "square"])
def test_bad_shapes_raise_clear_errors(bad):
    keys, residuals = torch.zeros(3, 4), torch.zeros(3, 2)
    if bad == "rows":
        with pytest.raises(ValueError, match="one row per edit"):
            memit_update(keys, torch.zeros(2, 2), torch.eye(4), covariance_weight=1.0)
    else:
        with pytest.raises(ValueError, match=r"\(4, 4\)"):
            alphaedit_update(keys, residuals, torch.eye(3))


def test_memit_handles_dead_key_units_with_the_minimum_norm_solution(problem):
    k1, r, _, k0, _ = problem
    k0, k1 = k0.clone(), k1.clone()
    k0[3], k1[3] = 0.0, 0.0  # unit 3 is never active: C0 + K1K1ᵀ is singular
    c0 = k0 @ k0.T / PRESERVED + 0.1 * torch.diag((torch.arange(D_IN) != 3).double())
    delta = memit_update(k1.T, r.T, c0, covariance_weight=1.0)
    assert float(delta[:, 3].abs().max()) < 1e-10 * float(delta.abs().max())
    keep = [i for i in range(D_IN) if i != 3]
    reduced = memit_update(k1[keep].T, r.T, c0[keep][:, keep], covariance_weight=1.0)
    assert relative(delta[:, keep], reduced) <= 1e-6
