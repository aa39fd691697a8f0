"""Portable reporting: lessons print what a figure means, in digits every machine reproduces.

A lesson's stored outputs are compared by nbval on the learner's machine. Another CPU, thread
count or BLAS path changes the last digits of every floating-point result, and it changes the
results of training and of ill-conditioned solves by far more. So a lesson prints

* round-off as what it means, never as digits: :func:`round_off` gives ``≤ 1e-12`` and
  :func:`zero_to_round_off` gives ``zero to round-off (≤ 1e-12)``, each after checking the bound;
  :func:`without_round_off` sets the round-off entries of a tensor or array to ``+0`` before it
  is printed (no ``-0.`` and no ``1.3e-16``);
* a well-conditioned figure with :func:`stable`, which formats it and checks that every value
  within the stated ``spread`` (how far another machine may move it) formats to the same text;
* a result of training or of an ill-conditioned solve as a claim with its tolerance:
  :func:`claim` prints ``ACC ≈ 99 (checked: within 2 points)``, :func:`claim_at_most`,
  :func:`claim_at_least` and :func:`claim_between` print bounds, and :func:`claim_equal` a count. The printed line holds the claim,
  not the measured value, so it is the same on every machine where the claim holds; where it
  does not, :class:`ClaimError` is raised and nbval fails.

A cell that shows measured figures in full (a results table) is tagged ``nbval-ignore-output``
and checks the claims of the text around it with these functions (or ``assert``);
``tests/test_notebook_outputs.py`` enforces both rules on every lesson.
"""

from __future__ import annotations

import math
import re
from typing import TypeVar

import numpy as np
import torch

__all__ = ["ClaimError", "claim", "claim_at_least", "claim_at_most", "claim_between", "claim_equal", "round_off",
           "stable", "without_round_off", "zero_to_round_off"]

ROUND_OFF = 1e-12
"""Default bound for float64 round-off of quantities of order one."""

ArrayLike = TypeVar("ArrayLike", torch.Tensor, np.ndarray)


class ClaimError(AssertionError):
    """A figure does not satisfy the claim (or the bound, or the spread) a lesson prints for it."""


def _number(x: float) -> str:
    """A bound or tolerance as a reader writes it: ``1e-12``, ``0.5``, ``2``."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:g}").replace("e+", "e")


def _finite(label: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ClaimError(f"{label} is {value}, not a finite number")
    return value


def round_off(value: float, bound: float = ROUND_OFF) -> str:
    """``≤ bound`` (e.g. ``≤ 1e-12``) for a value that is round-off; raises if it is not.

    ``value``: a float (or 0-d tensor); ``bound``: the largest ``|value|`` still counted as
    round-off, in the value's own units. Raises :class:`ClaimError` when ``|value| > bound`` or
    the value is not finite.
    """
    magnitude = abs(_finite("the round-off value", value))
    if magnitude > bound:
        raise ClaimError(f"{magnitude:.3g} is not round-off: it exceeds the bound {_number(bound)}")
    return f"≤ {_number(bound)}"


def zero_to_round_off(value: float, bound: float = ROUND_OFF) -> str:
    """``zero to round-off (≤ bound)``, after the check of :func:`round_off`."""
    return f"zero to round-off ({round_off(value, bound)})"


def without_round_off(values: ArrayLike, bound: float = ROUND_OFF) -> ArrayLike:
    """A copy of ``values`` (tensor or array, any shape) with every entry ``|v| ≤ bound`` set to
    ``+0``, so that round-off prints as ``0`` instead of digits or a sign (``-0.``) that change from
    machine to machine. Entries above the bound are returned unchanged; NaN stays NaN."""
    if isinstance(values, torch.Tensor):
        return torch.where(values.abs() <= bound, torch.zeros_like(values), values)
    array = np.asarray(values)
    return np.where(np.abs(array) <= bound, np.zeros_like(array), array)


def stable(value: float, spec: str, spread: float) -> str:
    """``format(value, spec)``, after checking that every value within ``±spread`` gives the same text.

    ``spread``: how far another machine may move the value (absolute, in the value's units), e.g.
    ``1e-9`` for a well-conditioned float64 result of order one, ``1e-4`` for a float32 one.
    Raises :class:`ClaimError` when the printed digits could change within the spread (the value
    sits next to a rounding boundary, or is a zero whose sign is round-off): print fewer digits,
    or print a claim instead.
    """
    value = _finite("the value", value)
    text = format(value, spec)
    for neighbour in (value - spread, value + spread):
        if format(neighbour, spec) != text:
            raise ClaimError(f"{value!r} prints as {text!r} with format {spec!r}, but {neighbour!r} (within the "
                             f"spread {_number(spread)}) prints as {format(neighbour, spec)!r}: another machine "
                             "may print other digits; print fewer, or a claim")
    return text


def claim(label: str, value: float, expected: float, tolerance: float, unit: str = "") -> None:
    """Check ``|value − expected| ≤ tolerance`` and print ``label ≈ expected (checked: within tolerance)``.

    ``unit`` is appended to the figures, e.g. ``" points"`` or ``"%"``. Raises
    :class:`ClaimError` (naming the measured value) when the claim does not hold.
    """
    measured = _finite(label, value)
    if not abs(measured - expected) <= tolerance:
        raise ClaimError(f"{label} = {measured:.6g}{unit}, not within {_number(tolerance)}{unit} of "
                         f"{_number(expected)}{unit}")
    print(f"{label} ≈ {_number(expected)}{unit} (checked: within {_number(tolerance)}{unit})")


def claim_at_most(label: str, value: float, bound: float, unit: str = "") -> None:
    """Check ``value ≤ bound`` and print ``label ≤ bound (checked)``; raises :class:`ClaimError` if not."""
    measured = _finite(label, value)
    if not measured <= bound:
        raise ClaimError(f"{label} = {measured:.6g}{unit}, above the bound {_number(bound)}{unit}")
    print(f"{label} ≤ {_number(bound)}{unit} (checked)")


def claim_at_least(label: str, value: float, bound: float, unit: str = "") -> None:
    """Check ``value ≥ bound`` and print ``label ≥ bound (checked)``; raises :class:`ClaimError` if not."""
    measured = _finite(label, value)
    if not measured >= bound:
        raise ClaimError(f"{label} = {measured:.6g}{unit}, below the bound {_number(bound)}{unit}")
    print(f"{label} ≥ {_number(bound)}{unit} (checked)")


def claim_between(label: str, value: float, low: float, high: float, unit: str = "") -> None:
    """Check ``low ≤ value ≤ high`` and print ``label between low and high (checked)``."""
    if not low <= high:
        raise ValueError(f"claim_between: low ({low}) must not exceed high ({high})")
    measured = _finite(label, value)
    if not low <= measured <= high:
        raise ClaimError(f"{label} = {measured:.6g}{unit}, outside [{_number(low)}, {_number(high)}]{unit}")
    print(f"{label} between {_number(low)} and {_number(high)}{unit} (checked)")


def claim_equal(label: str, value: int, expected: int, unit: str = "") -> None:
    """Check that a count equals ``expected`` and print ``label = expected (checked)``.

    For integers (a dimension, a number of prompts); raises :class:`ClaimError` when they differ.
    """
    if value != expected:
        raise ClaimError(f"{label} = {value}{unit}, not {expected}{unit}")
    print(f"{label} = {expected}{unit} (checked)")
