"""Continual-learning metrics on an accuracy matrix computed by hand."""

import numpy as np
import pytest

from nullspace.continual.metrics import average_accuracy, backward_transfer, forgetting, plasticity, summarise

NAN = np.nan
# R[i, j]: accuracy on task j after training task i (three tasks).
R = np.array([
    [90.0, NAN, NAN],
    [80.0, 95.0, NAN],
    [70.0, 85.0, 60.0],
])


def test_average_accuracy_is_the_last_row_mean():
    assert average_accuracy(R) == pytest.approx((70 + 85 + 60) / 3)


def test_backward_transfer_divides_by_t_minus_one():
    # (70 - 90) + (85 - 95) = -30 over T - 1 = 2 tasks
    assert backward_transfer(R) == pytest.approx(-15.0)


def test_forgetting_uses_the_best_earlier_accuracy():
    r = R.copy()
    r[1, 0] = 92.0  # task 1 improved after task 2: its best is 92, not 90
    assert forgetting(r) == pytest.approx(((92 - 70) + (95 - 85)) / 2)
    assert forgetting(R) == pytest.approx(((90 - 70) + (95 - 85)) / 2)


def test_plasticity_is_the_diagonal_mean():
    assert plasticity(R) == pytest.approx((90 + 95 + 60) / 3)


def test_summary_and_a_matrix_without_forgetting():
    r = np.array([[100.0, NAN], [100.0, 99.0]])
    assert summarise(r) == pytest.approx({"ACC": 99.5, "BWT": 0.0, "forgetting": 0.0, "plasticity": 99.5})


def test_bad_matrices_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="square"):
        average_accuracy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN on or below"):
        backward_transfer(np.array([[90.0, NAN], [NAN, 80.0]]))
    with pytest.raises(ValueError, match="two tasks"):
        backward_transfer(np.array([[90.0]]))
