"""A linear associative memory: the setting where MEMIT versus AlphaEdit can be seen exactly.

One matrix ``W`` (d_out × d_in) stores key–value pairs ``W k_i ≈ v_i``, as an FFN output matrix
does in the locate-then-edit picture (AlphaEdit Eq. 2). The memory is built by least squares on
the preserved pairs ``(K0, V0)``, then edited batch after batch with a method's closed form
(MEMIT, Eq. 15, or AlphaEdit, Eq. 14). The one thing that decides whether AlphaEdit can protect
the preserved pairs is the *geometry* of the preserved keys:

* ``confined``: preserved keys lie in a subspace of dimension ``rank < d_in``; ``K0 K0ᵀ`` has an
  exact null space and AlphaEdit's edits leave ``W K0`` unchanged to round-off (Eq. 10).
* ``spanning``: preserved keys fill every direction (rank ``d_in``); there is no null space, and
  an approximate one (small eigenvalues) protects only part of ``W K0``.
* ``decaying``: keys span everything but with geometrically decaying energy per direction; a
  threshold decides how much is protected — the regime of real language-model keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nullspace.validation import require_int

__all__ = [
    "KEY_GEOMETRIES",
    "AssociativeMemory",
    "SequentialTrace",
    "build_memory",
    "edit_sequentially",
    "random_orthonormal",
    "relative_error",
    "sample_keys",
]

KEY_GEOMETRIES = ("confined", "spanning", "decaying")

# A solve maps (keys (u, d_in), residuals (u, d_out), edited covariance Kp Kpᵀ) to Δ (d_out, d_in).
UpdateRule = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sample_keys(
    count: int,
    dim: int,
    geometry: str,
    generator: torch.Generator,
    *,
    rank: int | None = None,
    decay: float = 0.9,
    basis: torch.Tensor | None = None,
) -> torch.Tensor:
    """``count`` keys of dimension ``dim`` as rows (float64), with the given ``geometry``.

    ``confined`` keys are Gaussian inside the span of ``basis`` (``(dim, rank)``, orthonormal; drawn
    at random when not given). ``spanning`` keys are isotropic Gaussian. ``decaying`` keys have
    standard deviation ``decay**i`` along the i-th coordinate of ``basis`` (a random rotation
    when not given).
    """
    if geometry not in KEY_GEOMETRIES:
        raise ValueError(f"unknown key geometry {geometry!r}: choose one of {KEY_GEOMETRIES}.")
    if count <= 0 or dim <= 0:
        raise ValueError(f"count and dim must be positive, got {count} and {dim}.")
    if geometry == "spanning":
        return torch.randn(count, dim, generator=generator, dtype=torch.float64)
    if geometry == "confined":
        if rank is None or not 0 < rank <= dim:
            raise ValueError(f"confined keys need 0 < rank ≤ dim = {dim}, got rank={rank}.")
        if basis is None:
            basis = random_orthonormal(dim, rank, generator)
        coefficients = torch.randn(count, basis.shape[1], generator=generator, dtype=torch.float64)
        return coefficients @ basis.T
    if not 0 < decay <= 1:
        raise ValueError(f"decay must lie in (0, 1], got {decay}.")
    if basis is None:
        basis = random_orthonormal(dim, dim, generator)
    scales = decay ** torch.arange(dim, dtype=torch.float64)
    return (torch.randn(count, dim, generator=generator, dtype=torch.float64) * scales) @ basis.T


def random_orthonormal(dim: int, columns: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``(dim, columns)`` matrix with orthonormal columns (QR of a Gaussian matrix)."""
    q, _ = torch.linalg.qr(torch.randn(dim, columns, generator=generator, dtype=torch.float64))
    return q


def relative_error(weight: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> float:
    """``‖K Wᵀ − V‖_F / ‖V‖_F`` for keys and values stored as rows."""
    return float(torch.linalg.norm(keys @ weight.T - values) / torch.linalg.norm(values))


@dataclass
class AssociativeMemory:
    """``W`` (d_out × d_in) with the preserved pairs it was built from (rows of ``K0``, ``V0``)."""

    weight: torch.Tensor
    preserved_keys: torch.Tensor
    preserved_values: torch.Tensor

    @property
    def key_covariance(self) -> torch.Tensor:
        """``C0 = K0ᵀ K0 / n``, the per-key mean second moment (what a corpus estimates)."""
        return self.preserved_keys.T @ self.preserved_keys / self.preserved_keys.shape[0]

    def preserved_error(self, weight: torch.Tensor | None = None) -> float:
        """Relative error of ``weight`` (default: the stored one) on the preserved pairs."""
        return relative_error(self.weight if weight is None else weight,
                              self.preserved_keys, self.preserved_values)


def build_memory(preserved_keys: torch.Tensor, d_out: int, generator: torch.Generator) -> AssociativeMemory:
    """A random ``W`` (entries of variance ``1/d_in``) and the values it stores: ``V0 = K0 Wᵀ``.

    Starting from the weight (rather than fitting random values by least squares) keeps ``W``
    well conditioned for every key geometry, and the preserved error starts at exactly zero.
    """
    d_in = preserved_keys.shape[1]
    weight = torch.randn(d_out, d_in, generator=generator, dtype=torch.float64) / d_in ** 0.5
    return AssociativeMemory(weight, preserved_keys, preserved_keys @ weight.T)


@dataclass
class SequentialTrace:
    """What happened batch after batch: relative errors on preserved and on edited pairs."""

    edits: list[int] = field(default_factory=list)
    preserved_error: list[float] = field(default_factory=list)
    edited_error: list[float] = field(default_factory=list)
    probe_error: list[float] = field(default_factory=list)
    weight: torch.Tensor | None = None


def edit_sequentially(
    memory: AssociativeMemory,
    new_keys: torch.Tensor,
    new_values: torch.Tensor,
    batch_size: int,
    update: UpdateRule,
    probe: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SequentialTrace:
    """Insert ``(new_keys, new_values)`` batch by batch with ``update``, keeping ``Kp Kpᵀ``.

    After each batch the batch's ``K1 K1ᵀ`` joins the edited-key cache ``Kp Kpᵀ`` (as the official
    code does); the trace records the error on the preserved pairs and on all pairs edited so far,
    and, when ``probe = (keys, values)`` is given, on those pairs too (say, preserved keys seen
    in a slightly different context: ``K0`` plus a little noise, with their original values).
    """
    if new_keys.shape[0] != new_values.shape[0]:
        raise ValueError("new_keys and new_values must have the same number of rows.")
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    weight = memory.weight.clone()
    edited_covariance = torch.zeros(weight.shape[1], weight.shape[1], dtype=torch.float64)
    trace = SequentialTrace()
    for start in range(0, new_keys.shape[0], batch_size):
        keys = new_keys[start:start + batch_size]
        values = new_values[start:start + batch_size]
        residuals = values - keys @ weight.T
        weight = weight + update(keys, residuals, edited_covariance)
        edited_covariance = edited_covariance + keys.T @ keys
        done = start + keys.shape[0]
        trace.edits.append(done)
        trace.preserved_error.append(memory.preserved_error(weight))
        trace.edited_error.append(relative_error(weight, new_keys[:done], new_values[:done]))
        if probe is not None:
            trace.probe_error.append(relative_error(weight, *probe))
    trace.weight = weight
    return trace
