"""Range checks for the settings of the continual-learning package.

Every error names the argument, says what was wrong with the value it got, and what to pass
instead, so that a typo (``batch_size=0``, ``lr=float("nan")``, ``temperature=0``) stops the run
before any training instead of producing an empty loop, NaN weights or a silent no-op.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_choice", "check_fraction", "check_int", "check_number"]


def check_int(value: object, name: str, *, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an ``int`` after checking that it is an integer ``≥ minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}). {hint}".rstrip())
    if value < minimum:
        bound = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}. {hint}".rstrip())
    return int(value)


def check_number(value: object, name: str, *, positive: bool = False, hint: str = "") -> float:
    """``value`` as a ``float`` after checking that it is a finite real number, ``≥ 0`` (or ``> 0``
    with ``positive=True``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__}). {hint}".rstrip())
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}. {hint}".rstrip())
    if number < 0 or (positive and number == 0):
        bound = "positive (> 0)" if positive else "non-negative (≥ 0)"
        raise ValueError(f"{name} must be {bound}, got {number:g}. {hint}".rstrip())
    return number


def check_fraction(value: object, name: str, *, closed: bool = False, hint: str = "") -> float:
    """``value`` as a ``float`` in ``[0, 1)`` (``[0, 1]`` with ``closed=True``)."""
    number = check_number(value, name, hint=hint)
    if number > 1 or (number == 1 and not closed):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"{name} must lie in {interval}, got {number:g}. {hint}".rstrip())
    return number


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """``value`` after checking that it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}.")
    return str(value)
