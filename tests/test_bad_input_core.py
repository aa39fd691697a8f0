"""Bad input into the null-space core and the closed-form solves: each kind gets an error that
names the argument, what was wrong and what to do, before anything is computed or written."""

import math

import numpy as np
import pytest
import torch

from nullspace.editing.hparams import EditHyperParams, MethodHyperParams
from nullspace.editing.methods.alphaedit import alphaedit_update
from nullspace.editing.methods.memit import memit_update
from nullspace.editing.methods.rome import rome_update
from nullspace.editing.preserved import knowledge_covariance
from nullspace.linalg import (
    AbsoluteRule,
    CovarianceAccumulator,
    FullNullSpaceError,
    RelativeRule,
    null_space,
    null_space_projector,
)

pytestmark = pytest.mark.bad_input

D_IN, D_OUT, EDITS = 20, 6, 3


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def low_rank_covariance(dim: int = D_IN, keys: int = 8, seed: int = 0) -> torch.Tensor:
    k = torch.randn(keys, dim, generator=generator(seed), dtype=torch.float64)
    return k.T @ k / keys


@pytest.fixture
def problem():
    g = generator(1)
    keys = torch.randn(EDITS, D_IN, generator=g, dtype=torch.float64)
    residuals = torch.randn(EDITS, D_OUT, generator=g, dtype=torch.float64)
    c0 = low_rank_covariance() + 0.1 * torch.eye(D_IN, dtype=torch.float64)
    projector = null_space(low_rank_covariance(), RelativeRule(1e-10)).projector()
    return keys, residuals, c0, projector


def indefinite(dim: int = D_IN) -> torch.Tensor:
    """A symmetric matrix with eigenvalues of both signs: the difference of two covariances."""
    return low_rank_covariance(dim, seed=1) - low_rank_covariance(dim, seed=2)


# --- the mirror image of the empty null space: P = I protects nothing -------------------------------

def test_a_rule_that_makes_every_direction_null_is_refused():
    # the example: C0 = E[k kᵀ] of 8 keys in 20 dimensions with λ_max ≈ 4e-3, AlphaEdit's 2e-2
    c0 = low_rank_covariance()
    c0 = c0 * 4e-3 / float(torch.linalg.eigvalsh(c0)[-1])
    with pytest.raises(FullNullSpaceError, match="every direction as null") as err:
        null_space(c0, AbsoluteRule(2e-2))
    message = str(err.value)
    assert "P = I" in message and "allow_full=True" in message and "λ < 0.02" in message
    with pytest.raises(FullNullSpaceError):
        null_space_projector(c0, AbsoluteRule(2e-2))
    with pytest.raises(FullNullSpaceError):
        null_space(c0, RelativeRule(1.0))
    full = null_space(c0, AbsoluteRule(2e-2), allow_full=True)  # on purpose
    assert full.null_dim == D_IN and torch.allclose(full.projector(), torch.eye(D_IN, dtype=torch.float64))
    # a threshold below λ_max protects the keys' span again
    assert null_space(c0, AbsoluteRule(1e-5)).null_dim == D_IN - 8


def test_a_zero_covariance_has_nothing_to_protect_and_is_accepted():
    space = null_space(torch.zeros(4, 4), AbsoluteRule(2e-2))
    assert space.null_dim == 4


# --- NullSpace.project and the covariance's type ------------------------------------------------

def test_project_refuses_integer_complex_and_list_updates():
    space = null_space(low_rank_covariance(), RelativeRule(1e-10))
    with pytest.raises(TypeError, match=r"update must be a floating-point tensor, got torch.int64.*double\(\)"):
        space.project(torch.ones(3, D_IN, dtype=torch.long))
    with pytest.raises(TypeError, match="update is complex"):
        space.project(torch.ones(3, D_IN, dtype=torch.complex128))
    with pytest.raises(TypeError, match=r"update must be a torch.Tensor, got list"):
        space.project([[1.0] * D_IN])
    with pytest.raises(ValueError, match="last dimension must be the input dimension 20"):
        space.project(torch.ones(3, D_IN + 1))
    # a float update is projected, in its own dtype
    update = torch.ones(3, D_IN, dtype=torch.float32)
    assert space.project(update).dtype == torch.float32


def test_complex_inputs_are_refused_not_made_real():
    c = low_rank_covariance().to(torch.complex128)
    with pytest.raises(TypeError, match="the covariance is complex"):
        null_space(c, RelativeRule(1e-3))
    with pytest.raises(TypeError, match="x is complex"):
        CovarianceAccumulator(4).update(torch.ones(2, 4, dtype=torch.complex64))
    keys = torch.ones(EDITS, D_IN, dtype=torch.complex128)
    with pytest.raises(TypeError, match="keys is complex"):
        memit_update(keys, torch.ones(EDITS, D_OUT), torch.eye(D_IN), covariance_weight=1.0)


def test_python_lists_where_tensors_belong_get_a_type_error_naming_the_argument(problem):
    keys, residuals, c0, projector = problem
    with pytest.raises(TypeError, match=r"keys must be a torch.Tensor, got list"):
        memit_update(keys.tolist(), residuals, c0, covariance_weight=1.0)
    with pytest.raises(TypeError, match=r"residuals must be a torch.Tensor, got list"):
        alphaedit_update(keys, residuals.tolist(), projector)
    with pytest.raises(TypeError, match=r"projector must be a torch.Tensor, got list"):
        alphaedit_update(keys, residuals, projector.tolist())
    with pytest.raises(TypeError, match=r"key_covariance must be a torch.Tensor, got list"):
        memit_update(keys, residuals, c0.tolist(), covariance_weight=1.0)
    with pytest.raises(TypeError, match=r"key must be a torch.Tensor, got list"):
        rome_update(keys[0].tolist(), residuals[0], c0)
    with pytest.raises(TypeError, match=r"the covariance must be a torch.Tensor, got list"):
        null_space(c0.tolist(), RelativeRule(1e-3))
    with pytest.raises(TypeError, match=r"corpus_covariance must be a torch.Tensor, got list"):
        knowledge_covariance(c0.tolist(), None, 0.0)
    with pytest.raises(TypeError, match="rule must be a selection rule such as AbsoluteRule"):
        null_space(c0, 2e-2)
    with pytest.raises(TypeError, match="dim must be an integer"):
        CovarianceAccumulator(4.0)
    # numpy arrays are tensors' equals in the core
    assert null_space(c0.numpy(), RelativeRule(0.5)).dim == D_IN


# --- indefinite and non-symmetric "covariances", wherever a covariance arrives --------------------

def test_indefinite_covariances_are_refused_everywhere(problem):
    keys, residuals, _, _ = problem
    bad = indefinite()
    with pytest.raises(ValueError, match="the covariance is not positive semi-definite: its smallest eigenvalue"):
        null_space(bad, RelativeRule(1e-3))
    with pytest.raises(ValueError, match="key_covariance is not positive semi-definite"):
        memit_update(keys, residuals, bad, covariance_weight=1.0)
    with pytest.raises(ValueError, match="edited_covariance is not positive semi-definite"):
        memit_update(keys, residuals, torch.eye(D_IN), covariance_weight=1.0, edited_covariance=bad)
    with pytest.raises(ValueError, match="key_covariance is not positive semi-definite"):
        rome_update(keys[0], residuals[0], bad)
    projector = null_space(low_rank_covariance(), RelativeRule(1e-10)).projector()
    with pytest.raises(ValueError, match="edited_covariance is not positive semi-definite"):
        alphaedit_update(keys, residuals, projector, edited_covariance=bad)


def test_non_symmetric_covariances_are_refused_everywhere(problem):
    keys, residuals, c0, _ = problem
    skewed = c0 + torch.triu(torch.ones(D_IN, D_IN, dtype=torch.float64), 1)
    with pytest.raises(ValueError, match="the covariance is not symmetric"):
        null_space(skewed, RelativeRule(1e-3))
    with pytest.raises(ValueError, match=r"key_covariance is not symmetric.*\(C \+ C.T\) / 2"):
        memit_update(keys, residuals, skewed, covariance_weight=1.0)
    with pytest.raises(ValueError, match="key_covariance is not symmetric"):
        rome_update(keys[0], residuals[0], skewed)
    with pytest.raises(ValueError, match="corpus_covariance is not symmetric"):
        knowledge_covariance(skewed, None, 0.0)


def test_round_off_in_a_float32_covariance_is_not_mistaken_for_indefiniteness():
    # rank 8 of 64 in float32: the "zero" eigenvalues come out slightly negative
    k = torch.randn(8, 64, generator=generator(3))
    c = k.T @ k / 8
    assert float(torch.linalg.eigvalsh(c.double())[0]) < 0
    assert null_space(c, AbsoluteRule(1e-4)).null_dim == 56
    delta = memit_update(torch.randn(2, 64, generator=generator(4)), torch.randn(2, 5, generator=generator(5)), c,
                         covariance_weight=1.0)
    assert bool(torch.isfinite(delta).all())


# --- alphaedit_update's projector ----------------------------------------------------------------

def test_alphaedit_refuses_a_matrix_that_is_not_a_projector(problem):
    keys, residuals, c0, projector = problem
    with pytest.raises(ValueError, match=r"projector is not idempotent .* Pass NullSpace.projector\(\)"):
        alphaedit_update(keys, residuals, c0)  # C0 passed by mistake
    with pytest.raises(ValueError, match="projector is not symmetric"):
        alphaedit_update(keys, residuals, projector + torch.triu(torch.ones(D_IN, D_IN, dtype=torch.float64), 1))
    with pytest.raises(ValueError, match="projector is not idempotent"):
        alphaedit_update(keys, residuals, 0.5 * projector)
    assert alphaedit_update(keys, residuals, projector).shape == (D_OUT, D_IN)


# --- NaN and infinite weights: refused up front, and the error does not blame "the keys" -----------

@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_or_infinite_solve_weights_are_refused_naming_the_weight(problem, value):
    keys, residuals, c0, projector = problem
    cases = [
        (lambda: memit_update(keys, residuals, c0, covariance_weight=value), "covariance_weight λ"),
        (lambda: alphaedit_update(keys, residuals, projector, l2_weight=value), "l2_weight"),
        (lambda: rome_update(keys[0], residuals[0], c0, ridge=value), "ridge"),
        (lambda: knowledge_covariance(c0, keys, value), "weight α"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError) as err:
            call()
        assert name in str(err.value) and "finite" in str(err.value) and "keys contains" not in str(err.value)


def test_rome_ridge_nan_is_not_silently_dropped(problem):
    keys, residuals, c0, _ = problem
    with pytest.raises(ValueError, match=r"ridge must be a finite number ≥ 0, got nan"):
        rome_update(keys[0], residuals[0], c0, ridge=float("nan"))
    with pytest.raises(ValueError, match="ridge must be ≥ 0, got -1"):
        rome_update(keys[0], residuals[0], c0, ridge=-1.0)
    with pytest.raises(TypeError, match="ridge must be a real number, got str"):
        rome_update(keys[0], residuals[0], c0, ridge="1e-6")


def test_negative_or_zero_weights_are_refused(problem):
    keys, residuals, c0, projector = problem
    with pytest.raises(ValueError, match="covariance_weight λ must be ≥ 0, got -1"):
        memit_update(keys, residuals, c0, covariance_weight=-1.0)
    with pytest.raises(ValueError, match="l2_weight must be > 0, got 0.*singular"):
        alphaedit_update(keys, residuals, projector, l2_weight=0.0)


EDIT_SETTINGS = {"layers": (0, 1), "v_num_grad_steps": 5, "v_lr": 0.5, "kl_factor": 0.0625, "v_weight_decay": 0.5,
                 "clamp_norm_factor": 0.75}
METHOD_SETTINGS = {"memit_covariance_weight": 1000.0, "alphaedit_rule": AbsoluteRule(1e-2), "alphaedit_l2": 1.0,
                   "rome_layer": 0, "ft_layers": (1,), "ft_learning_rate": 1e-2, "ft_steps": 25,
                   "ft_norm_constraint": 2e-2, "statistics_texts": 960}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("v_lr", math.nan, "v_lr must be a finite number > 0"),
    ("v_lr", 0.0, "v_lr must be > 0"),
    ("kl_factor", -0.1, "kl_factor must be ≥ 0"),
    ("kl_factor", math.nan, "kl_factor must be a finite number"),
    ("v_weight_decay", -0.5, "v_weight_decay must be ≥ 0"),
    ("v_weight_decay", math.inf, "v_weight_decay must be a finite number"),
    ("clamp_norm_factor", math.nan, "clamp_norm_factor must be a finite number"),
    ("early_stop_loss", math.nan, "early_stop_loss must be a finite number"),
    ("v_num_grad_steps", 2.5, "v_num_grad_steps must be an integer"),
    ("layers", (1, 0), "layers must be strictly increasing"),
    ("layers", (1, 1), "layers must be strictly increasing"),
    ("kl_prompt", "is a", "kl_prompt must be a string with one '{}'"),
])
def test_edit_hyperparameters_are_range_checked(field, value, message):
    settings = EDIT_SETTINGS | {field: value}
    with pytest.raises((ValueError, TypeError), match=message):
        EditHyperParams(**settings)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("memit_covariance_weight", math.nan, "memit_covariance_weight must be a finite number"),
    ("alphaedit_l2", math.inf, "alphaedit_l2 must be a finite number"),
    ("alphaedit_l2", 0.0, "alphaedit_l2 must be > 0"),
    ("ft_learning_rate", math.nan, "ft_learning_rate must be a finite number"),
    ("ft_norm_constraint", -1.0, "ft_norm_constraint must be > 0"),
    ("ft_steps", 0, "ft_steps must be an integer ≥ 1"),
    ("ft_layers", (2, 1), "ft_layers must be strictly increasing"),
    ("rome_layer", -1, "rome_layer must be an integer ≥ 0"),
    ("preserved_keys_weight", math.nan, "preserved_keys_weight must be a finite number"),
    ("alphaedit_rule", 2e-2, "alphaedit_rule must be a selection rule"),
])
def test_method_hyperparameters_are_range_checked(field, value, message):
    settings = METHOD_SETTINGS | {field: value}
    with pytest.raises((ValueError, TypeError), match=message):
        MethodHyperParams(**settings)


def test_numpy_scalars_and_zero_dim_tensors_are_numbers(problem):
    keys, residuals, c0, _ = problem
    a = memit_update(keys, residuals, c0, covariance_weight=np.float64(2.0))
    b = memit_update(keys, residuals, c0, covariance_weight=torch.tensor(2.0))
    assert torch.allclose(a, b)


def test_the_lesson_helpers_refuse_bad_weights_and_batch_sizes():
    from nullspace.editing.associative_memory import build_memory, edit_sequentially
    from nullspace.editing.memory import least_squares_update, rank_one_update

    w = torch.randn(4, 6, generator=generator(7), dtype=torch.float64)
    keys = torch.randn(5, 6, generator=generator(8), dtype=torch.float64)
    with pytest.raises(ValueError, match="ridge must be a finite number ≥ 0, got nan"):
        least_squares_update(w, keys, keys[:1], torch.ones(1, 4), ridge=float("nan"))
    with pytest.raises(ValueError, match="key is zero"):
        rank_one_update(w, torch.zeros(6, dtype=torch.float64), torch.ones(4, dtype=torch.float64))
    memory = build_memory(keys, 4, generator(9))
    for size, error in ((0, ValueError), (-1, ValueError), (2.5, TypeError)):
        with pytest.raises(error, match="batch_size must be an integer"):
            edit_sequentially(memory, keys, torch.ones(5, 4, dtype=torch.float64), size, lambda *a: 0)


def test_selection_rules_and_layer_inputs_name_the_bad_argument():
    from torch import nn

    from nullspace.capture import layer_input_rows
    from nullspace.linalg import EnergyRule, MinRatioRule

    with pytest.raises(TypeError, match="AbsoluteRule: threshold_value must be a real number, got str"):
        AbsoluteRule("2e-2")
    with pytest.raises(ValueError, match="MinRatioRule: a must be a finite number ≥ 0, got nan"):
        MinRatioRule(float("nan"))
    with pytest.raises(ValueError, match="RelativeRule: ratio must be ≥ 0"):
        RelativeRule(-1e-3)
    with pytest.raises(ValueError, match=r"EnergyRule: fraction must lie in \(0, 1\]"):
        EnergyRule(float("nan"))
    with pytest.raises(ValueError, match=r"must end with its input dimension 6, got shape \(3, 5\)"):
        layer_input_rows(nn.Linear(6, 2), torch.ones(3, 5))
