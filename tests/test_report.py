"""The portable-reporting helpers print what a figure means and fail when the printed claim is false."""

import math

import numpy as np
import pytest
import torch

from nullspace.course.report import (
    ClaimError,
    claim,
    claim_at_least,
    claim_at_most,
    claim_between,
    claim_equal,
    round_off,
    stable,
    without_round_off,
    zero_to_round_off,
)


def test_round_off_prints_the_bound_not_the_digits():
    assert round_off(1.33e-16) == "≤ 1e-12"
    assert round_off(-1.91e-16) == "≤ 1e-12"
    assert round_off(torch.tensor(3e-7), bound=1e-5) == "≤ 1e-5"
    assert zero_to_round_off(0.0) == "zero to round-off (≤ 1e-12)"


@pytest.mark.parametrize("value", [2e-12, -1e-3, math.nan, math.inf])
def test_round_off_refuses_a_value_that_is_not_round_off(value):
    with pytest.raises(ClaimError):
        round_off(value)


def test_without_round_off_removes_signs_and_digits_of_round_off_only():
    values = torch.tensor([-3e-17, 4e-16, 0.7944, -2.5], dtype=torch.float64)
    cleaned = without_round_off(values)
    assert str(cleaned) == str(torch.tensor([0.0, 0.0, 0.7944, -2.5], dtype=torch.float64))
    assert not torch.signbit(cleaned[0])
    array = np.array([-1e-15, 1.5, np.nan])
    cleaned_array = without_round_off(array)
    assert str(np.round(cleaned_array, 2)) == "[0.  1.5 nan]"
    assert array[0] == -1e-15  # the input is not changed


def test_stable_prints_digits_that_survive_the_spread():
    assert stable(0.6819415, ".3f", 1e-5) == "0.682"
    assert stable(87.9, ".0f", 0.3) == "88"


@pytest.mark.parametrize("value, spec, spread", [
    (0.6819415, ".6f", 1e-6),   # the two machines of the course printed 0.681942 and 0.681941
    (-1e-15, ".2f", 1e-9),      # a zero whose printed sign is round-off: -0.00 or 0.00
    (87.65, ".1f", 0.1),        # next to a rounding boundary
])
def test_stable_refuses_digits_another_machine_may_change(value, spec, spread):
    with pytest.raises(ClaimError, match="another machine"):
        stable(value, spec, spread)


def test_claim_prints_the_claim_and_its_tolerance_not_the_measurement(capsys):
    claim("ACC", 98.7, 99, 2, unit=" points")
    claim("ACC", 97.2, 99, 2, unit=" points")
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["ACC ≈ 99 points (checked: within 2 points)"] * 2


@pytest.mark.parametrize("value", [96.9, 101.5, math.nan])
def test_claim_fails_outside_its_tolerance(value, capsys):
    with pytest.raises(ClaimError, match="ACC"):
        claim("ACC", value, 99, 2)
    assert capsys.readouterr().out == ""


def test_bounds_print_and_check(capsys):
    claim_at_most("‖ΔK0‖/‖WK0‖", 3e-15, 1e-10)
    claim_at_least("probe error", 1.4e3, 10)
    claim_between("BWT", -13.7, -20, -8, unit=" points")
    claim_equal("null dim", 3, 3)
    assert capsys.readouterr().out.splitlines() == [
        "‖ΔK0‖/‖WK0‖ ≤ 1e-10 (checked)",
        "probe error ≥ 10 (checked)",
        "BWT between -20 and -8 points (checked)",
        "null dim = 3 (checked)",
    ]
    with pytest.raises(ClaimError, match="null dim = 4, not 3"):
        claim_equal("null dim", 4, 3)
    with pytest.raises(ClaimError, match="above the bound"):
        claim_at_most("error", 2e-10, 1e-10)
    with pytest.raises(ClaimError, match="below the bound"):
        claim_at_least("error", 9.9, 10)
    with pytest.raises(ClaimError, match="outside"):
        claim_between("BWT", -7.9, -20, -8)
    with pytest.raises(ClaimError):
        claim_at_most("error", math.nan, 1.0)
    with pytest.raises(ValueError, match="low"):
        claim_between("BWT", 0.0, 1.0, -1.0)


def test_a_broken_claim_is_an_assertion_error():
    assert issubclass(ClaimError, AssertionError)
