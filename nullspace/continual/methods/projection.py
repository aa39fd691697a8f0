"""Null spaces prepared for use at every optimizer step.

:class:`nullspace.linalg.NullSpace` selects its bases ``U1`` / ``U2`` with a boolean mask each
time they are read and converts them to the update's dtype. An optimizer applies the same
projection thousands of times, so it converts once and keeps the bases: the projection is then
just the two thin matrix products of ``NullSpace.project``.
"""

from __future__ import annotations

from functools import cached_property

import torch

from nullspace.linalg import NullSpace

__all__ = ["StepNullSpace", "prepare_for_steps"]


class StepNullSpace(NullSpace):
    """A :class:`NullSpace` whose size and bases are computed once (same values, same ``project``)."""

    @cached_property
    def null_dim(self) -> int:  # type: ignore[override]
        return int(self.mask.sum())

    @cached_property
    def basis(self) -> torch.Tensor:  # type: ignore[override]
        return self.eigenvectors[:, self.mask].contiguous()

    @cached_property
    def range_basis(self) -> torch.Tensor:  # type: ignore[override]
        return self.eigenvectors[:, ~self.mask].contiguous()


def prepare_for_steps(ns: NullSpace, like: torch.Tensor) -> StepNullSpace:
    """``ns`` with its eigenvectors in ``like``'s dtype and device and its bases cached."""
    return StepNullSpace(ns.eigenvalues, ns.eigenvectors.to(dtype=like.dtype, device=like.device), ns.mask, ns.rule)
