"""Exercise checks that print a clear verdict instead of a traceback.

A check is written as a function that raises ``AssertionError`` with a helpful message when the
learner's code is wrong. :func:`exercise_check` turns it into a callable that returns a
:class:`Verdict`: it shows as one line in a notebook and is truthy only when the check passed.

Every learner function a check receives is called with deep copies of its arguments
(:func:`handing_copies`): a function that changes its inputs in place can change neither the
inputs of its next call nor the reference the check computes from them, so a wrong formula cannot
pass by rewriting the data it is compared on.

Graded classes: setting ``check.graded = True`` (the hidden test line that nbgrader restores in
every check cell at ``nbgrader autograde``) makes a check that does not pass raise
:class:`ExerciseNotPassed`, so the cell scores zero; IPython shows only the verdict line.
"""

from __future__ import annotations

import copy
import functools
import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ExerciseNotPassed", "Verdict", "exercise_check", "handing_copies"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one exercise check."""

    exercise: str
    title: str
    passed: bool
    implemented: bool
    detail: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        if self.passed:
            return f"✅ Exercise {self.exercise} ({self.title}): passed. {self.detail}".rstrip()
        if not self.implemented:
            return (f"⏳ Exercise {self.exercise} ({self.title}): not implemented yet — replace "
                    "the `raise NotImplementedError` with your code and run the cell again.")
        return f"❌ Exercise {self.exercise} ({self.title}): failed. {self.detail}"


def _copy(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # noqa: BLE001 — a generator or a tensor inside an autograd graph: hand it as it is
        return value


def handing_copies(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, called with deep copies of its arguments (tensors, arrays, modules, lists and
    dicts of them). Arguments that cannot be copied (a generator) are handed as they are."""
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        return function(*(_copy(a) for a in args), **{k: _copy(v) for k, v in kwargs.items()})

    return call


def _is_learner_function(value: Any) -> bool:
    return inspect.isfunction(value) or inspect.ismethod(value) or isinstance(value, functools.partial)


class ExerciseNotPassed(AssertionError):
    """A check that did not pass, raised only in graded mode (``check.graded = True``)."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(repr(verdict))
        self.verdict = verdict

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the verdict line alone."""
        return [repr(self.verdict)]


def exercise_check(exercise: str, title: str) -> Callable[[Callable[..., str | None]], Callable[..., Verdict]]:
    """Decorate a check body; the body raises AssertionError on a wrong answer and may return a
    short success note (a measured figure, say) to print with the verdict. The learner's functions
    reach the body wrapped by :func:`handing_copies`. The check returns the
    :class:`Verdict`, or raises :class:`ExerciseNotPassed` when its ``graded`` attribute is set and
    the verdict is not a pass."""

    def decorate(body: Callable[..., str | None]) -> Callable[..., Verdict]:
        @functools.wraps(body)
        def check(*args, **kwargs) -> Verdict:
            verdict = judge(*args, **kwargs)
            if check.graded and not verdict.passed:  # type: ignore[attr-defined]
                raise ExerciseNotPassed(verdict)
            return verdict

        def judge(*args, **kwargs) -> Verdict:
            args = tuple(handing_copies(a) if _is_learner_function(a) else a for a in args)
            kwargs = {k: handing_copies(v) if _is_learner_function(v) else v for k, v in kwargs.items()}
            try:
                note = body(*args, **kwargs)
            except NotImplementedError:
                return Verdict(exercise, title, False, False, "")
            except AssertionError as err:
                return Verdict(exercise, title, False, True, str(err) or "an assertion failed.")
            except Exception as err:  # noqa: BLE001 — the learner's code crashed: show where, briefly
                where = traceback.extract_tb(err.__traceback__)[-1]
                return Verdict(exercise, title, False, True,
                               f"your code raised {type(err).__name__}: {err} "
                               f"(line {where.lineno}, in {where.name}).")
            return Verdict(exercise, title, True, True, note or "")

        check.exercise = exercise  # type: ignore[attr-defined]
        check.graded = False  # type: ignore[attr-defined]
        return check

    return decorate
