"""AlphaEdit's null-space-constrained update (Fang et al., ICLR 2025, Eq. 12–14).

AlphaEdit projects the perturbation onto the null space of the preserved keys first,
``P = Û Ûᵀ`` (Eq. 8–9, built by :func:`nullspace.linalg.null_space` or, at scale,
:func:`nullspace.projector.fast_projector`), so that ``(W + Δ P) K0 = W K0`` (Eq. 10), and then
only has to fit the new edits, keep the earlier edits ``Kp`` and keep the update small (Eq. 12):

    min ‖(W + Δ̃P) K1 − V1‖² + ‖Δ̃P‖² + ‖Δ̃P Kp‖².

The normal equation (Eq. 13) gives (Eq. 14)

    Δ_AlphaEdit = R K1ᵀ P (Kp Kpᵀ P + K1 K1ᵀ P + I)⁻¹.

The official code solves the transposed ``d × d`` system with the identity scaled by ``L2`` (10
for GPT-2 XL): ``Δᵀ = solve(P (K1 K1ᵀ + Kp Kpᵀ) + L2·I, P K1 Rᵀ)``; ``L2 = 1`` is Eq. 14 exactly.
Compared with MEMIT (Eq. 15) the only change is the ``P``: the "one line of code".

**The push-through form.** With ``Kall = [K1, Kp]`` (the ``N`` keys edited so far, this batch's
first) the identity ``(P Kall Kallᵀ + L2 I)⁻¹ P Kall = P Kall (Kallᵀ P Kall + L2 I)⁻¹`` (it needs
only ``P = Pᵀ``) turns Eq. 14 into

    Δ = [R, 0] (L2·I_N + Kallᵀ P Kall)⁻¹ Kallᵀ P,

an ``N × N`` system instead of a ``d × d`` one. While ``N < d`` it is far cheaper (GPT-2 XL,
``d = 6400``: a batch of 100 edits solves a 100 × 100 system at first), and the editor keeps the
keys themselves (``N × d``) instead of a ``d × d`` cache. Past ``N ≥ PUSH_THROUGH_LIMIT · d`` the
``d × d`` form is cheaper again and the editor switches to it (``benchmarks/editing_solve_time.py``
measures the crossover: between 0.75·d and d). Both forms are Eq. 14 to round-off (tests: 1e-14).

Keys and residuals are rows, as in :mod:`nullspace.editing.methods.memit`; ``Δ`` is ``(d_out, d_in)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from nullspace.editing.methods._solve import (
    as_covariance,
    as_float64,
    as_projector,
    check_keys_and_residuals,
    check_square,
)
from nullspace.editing.methods.sequential import KeyValueEditor, TargetFunction, require_layers
from nullspace.linalg import NullSpace
from nullspace.projector import NullProjector, thin_projector
from nullspace.validation import require_number

__all__ = ["PUSH_THROUGH_LIMIT", "AlphaEditEditor", "alphaedit_push_through", "alphaedit_update",
           "alphaedit_with_earlier"]

# The editor uses the push-through form while the number of keys edited so far N < this · d.
# Measured (benchmarks/editing_solve_time.py, d = 1024, one thread, CPU seconds per batch of 100):
# push-through 0.228 s against the d × d form's 0.252 s at N = 0.75·d, 0.445 s against 0.321 s at N = d.
PUSH_THROUGH_LIMIT = 0.8

Projector = torch.Tensor | NullProjector


def _project_rows(projector: Projector, rows: torch.Tensor) -> torch.Tensor:
    """``rows @ P`` in float64 (``P`` symmetric: also ``(P rowsᵀ)ᵀ``)."""
    if isinstance(projector, NullProjector):
        return projector.to(rows.device).project(rows).to(torch.float64)
    return (rows.to(projector.dtype) @ projector.to(rows.device)).to(torch.float64)


def _check_projector(projector: Projector, d_in: int, device: torch.device) -> Projector:
    """A thin :class:`NullProjector` after a dimension check, or a dense ``P`` checked to be a
    finite, symmetric, idempotent ``(d_in, d_in)`` matrix (as float64 on ``device``)."""
    if isinstance(projector, NullProjector):
        if projector.dim != d_in:
            raise ValueError(f"projector acts on dimension {projector.dim}, but the keys have {d_in}: was it built "
                             "from C0 at another layer or model?")
        return projector
    return as_projector(projector, "projector", d_in, device)


def alphaedit_push_through(residuals: torch.Tensor, projected_keys: torch.Tensor, keys: torch.Tensor,
                           l2_weight: float, gram: torch.Tensor | None = None) -> torch.Tensor:
    """``Δ = [R, 0] (L2·I_N + Kallᵀ P Kall)⁻¹ Kallᵀ P`` (Eq. 14, push-through form).

    Args:
        residuals: ``Rᵀ`` of this batch, ``(u, d_out)``: the first ``u`` rows of ``keys`` are its keys.
        projected_keys: ``Kallᵀ P``, ``(N, d_in)``, this batch's keys first.
        keys: ``Kallᵀ``, ``(N, d_in)``.
        gram: ``Kallᵀ P Kall`` (``(N, N)``) when the caller keeps it up to date, else computed.

    Returns:
        ``Δ`` of shape ``(d_out, d_in)``, float64.
    """
    n, u = keys.shape[0], residuals.shape[0]
    if gram is None:
        gram = projected_keys @ keys.to(torch.float64).T
    system = (gram + gram.T) / 2
    system.diagonal().add_(l2_weight)
    rhs = torch.zeros(n, residuals.shape[1], dtype=torch.float64, device=residuals.device)
    rhs[:u] = residuals
    factor, info = torch.linalg.cholesky_ex(system)  # SPD: Kallᵀ P Kall is PSD and L2 > 0
    weights = torch.cholesky_solve(rhs, factor) if int(info) == 0 else torch.linalg.solve(system, rhs)
    return weights.T @ projected_keys


def alphaedit_update(
    keys: torch.Tensor,
    residuals: torch.Tensor,
    projector: Projector,
    *,
    l2_weight: float = 1.0,
    edited_covariance: torch.Tensor | None = None,
    projected_edited_covariance: torch.Tensor | None = None,
    earlier_keys: torch.Tensor | None = None,
) -> torch.Tensor:
    """AlphaEdit's update (Eq. 14): the push-through form when the earlier edits are given as keys
    (or there are none) and ``N < d``, else the official ``d × d`` solve.

    Args:
        keys: ``K1ᵀ``, the new keys as rows, shape ``(u, d_in)``.
        residuals: ``Rᵀ``, shape ``(u, d_out)``.
        projector: ``P`` onto the null space of the preserved keys: a ``(d_in, d_in)`` matrix
            (``NullSpace.projector()``) or a :class:`~nullspace.projector.NullProjector`.
        l2_weight: the weight of ``‖Δ̃P‖²`` (1 in Eq. 14; the official GPT-2 XL code uses 10).
        edited_covariance: ``Kp Kpᵀ`` of earlier batches, or None.
        projected_edited_covariance: ``P Kp Kpᵀ`` instead of ``edited_covariance``, for callers
            that keep it up to date batch by batch (saves a ``d³`` product per batch).
        earlier_keys: ``Kpᵀ``, the earlier edited keys as rows ``(N_p, d_in)``, instead of either
            covariance: allows the push-through form.

    Returns:
        ``Δ`` of shape ``(d_out, d_in)``, float64; ``Δ P = Δ``, so ``Δ K0 = 0`` whenever ``P K0 = 0``.

    Raises:
        TypeError: an argument is not a real tensor (a Python list, a complex tensor) or ``l2_weight``
            is not a number.
        ValueError: ``l2_weight`` is not positive and finite; ``projector`` is not a symmetric,
            idempotent ``(d_in, d_in)`` matrix; ``edited_covariance`` is not a covariance; shapes differ.
    """
    l2_weight = require_number(l2_weight, "l2_weight", minimum=0.0, strict=True,
                               hint="The system is singular without it: 1 in Eq. 14, 10 in the official GPT-2 XL code.")
    _, d_in, _ = check_keys_and_residuals(keys, residuals)
    given = [x is not None for x in (edited_covariance, projected_edited_covariance, earlier_keys)]
    if sum(given) > 1:
        raise ValueError("pass at most one of edited_covariance, projected_edited_covariance and earlier_keys.")
    k = as_float64(keys, "keys")
    r = as_float64(residuals, "residuals").to(k.device)
    p = _check_projector(projector, d_in, k.device)
    if earlier_keys is not None:
        kp = as_float64(earlier_keys, "earlier_keys").to(k.device)
        if kp.ndim != 2 or kp.shape[1] != d_in:
            raise ValueError(f"earlier_keys must be rows of dimension {d_in}, got shape {tuple(kp.shape)}.")
        k_all = torch.cat([k, kp])
    else:
        k_all = k
    if not (given[0] or given[1]) and k_all.shape[0] < PUSH_THROUGH_LIMIT * d_in:
        return alphaedit_push_through(r, _project_rows(p, k_all), k_all, l2_weight)
    projected_new = _project_rows(p, k).T  # P K1, (d_in, u)
    system = projected_new @ k  # P K1 K1ᵀ, d²·u instead of d³
    if edited_covariance is not None:
        cp = as_covariance(edited_covariance, "edited_covariance", d_in, k.device)
        system = system + _project_rows(p, cp.T).T  # P Kp Kpᵀ
    if projected_edited_covariance is not None:
        pcp = as_float64(projected_edited_covariance, "projected_edited_covariance").to(k.device)
        check_square(pcp, d_in, "projected_edited_covariance")
        system = system + pcp
    if earlier_keys is not None:
        system = system + _project_rows(p, kp).T @ kp
    system.diagonal().add_(l2_weight)
    return torch.linalg.solve(system, projected_new @ r).T


class AlphaEditEditor(KeyValueEditor):
    """Sequential AlphaEdit: Eq. 14 at every edited layer.

    Holds per layer only what the solve reads: the projector as its thinner factor
    (:class:`~nullspace.projector.NullProjector`; float64 when built from a ``NullSpace``,
    whatever precision it was built in otherwise: float32 for :func:`~nullspace.projector.fast_projector`),
    and the earlier edited keys ``Kp`` with ``Kpᵀ P`` and the Gram matrix ``Kpᵀ P Kp``
    (push-through form) — or, once ``N ≥ PUSH_THROUGH_LIMIT · d``, the ``d × d`` ``P Kp Kpᵀ`` of
    the official form. No unprojected ``Kp Kpᵀ`` cache is kept: the solve never reads it.
    """

    name = "AlphaEdit"

    def __init__(self, model, tokenizer, layers: Sequence[int], targets: TargetFunction, *,
                 null_spaces: Mapping[int, NullSpace | NullProjector], l2_weight: float,
                 context_templates: Sequence[str] = ("{}",), key_weighting: str = "grouped") -> None:
        super().__init__(model, tokenizer, layers, targets, context_templates=context_templates,
                         key_weighting=key_weighting)
        self.l2_weight = require_number(l2_weight, "l2_weight", minimum=0.0, strict=True,
                                        hint="1 in Eq. 14, 10 in the official GPT-2 XL code.")
        require_layers(null_spaces, self.layers, "null space", "build them with nullspace.linalg.null_space(C0, rule)")
        for layer in self.layers:
            space = null_spaces[layer]
            if not isinstance(space, NullSpace | NullProjector):
                raise TypeError(f"null_spaces[{layer}] must be a NullSpace (nullspace.linalg.null_space(C0, rule)) or "
                                f"a NullProjector, got {type(space).__name__}; a projector matrix goes to "
                                "alphaedit_update instead.")
            if space.dim != self.key_dim(layer):
                raise ValueError(f"null_spaces[{layer}] has dimension {space.dim} but block {layer}'s keys have "
                                 f"{self.key_dim(layer)}: was C0 read at another layer or model?")
        device = next(model.parameters()).device
        self.projectors: dict[int, NullProjector] = {}
        for layer in self.layers:
            space = null_spaces[layer]
            projector = thin_projector(space, space.eigenvectors.dtype) if isinstance(space, NullSpace) else space
            self.projectors[layer] = projector.to(device)
        self.reset_edited_keys()

    def reset_edited_keys(self) -> None:
        """Forget the earlier edited keys (a fresh experiment)."""
        self.edited_keys: dict[int, torch.Tensor] = {}
        self.projected_edited_keys: dict[int, torch.Tensor] = {}
        self.edited_gram: dict[int, torch.Tensor] = {}
        self.projected_edited_covariance: dict[int, torch.Tensor] = {}

    def reset(self) -> None:
        super().reset()
        self.reset_edited_keys()

    def edited_key_count(self, layer: int) -> int:
        """``N_p``, the number of earlier edited keys held as keys at ``layer`` (0 in the d × d form)."""
        return 0 if layer not in self.edited_keys else int(self.edited_keys[layer].shape[0])

    def remember_keys(self, layer: int, keys: torch.Tensor) -> None:
        """Add an edited batch's keys (re-extracted from the edited model, as the official code does)."""
        projector = self.projectors[layer]
        keys = keys.detach().to(projector.factor.device)
        wide = keys.to(torch.float64)
        projected = _project_rows(projector, wide)
        if layer in self.projected_edited_covariance:  # d × d form
            self.projected_edited_covariance[layer] += projected.T @ wide
            return
        gram = projected @ wide.T
        if layer in self.edited_keys:
            old_keys = self.edited_keys[layer].to(torch.float64)
            cross = projected @ old_keys.T
            gram = torch.cat([torch.cat([self.edited_gram[layer], cross.T], 1), torch.cat([cross, gram], 1)])
            keys = torch.cat([self.edited_keys[layer], keys])
            projected = torch.cat([self.projected_edited_keys[layer].to(torch.float64), projected])
        if keys.shape[0] >= PUSH_THROUGH_LIMIT * projector.dim:
            self.projected_edited_covariance[layer] = projected.T @ keys.to(torch.float64)  # P Kp Kpᵀ
            for store in (self.edited_keys, self.projected_edited_keys, self.edited_gram):
                store.pop(layer, None)
            return
        self.edited_keys[layer] = keys  # as computed (float32 from the model: exact)
        self.projected_edited_keys[layer] = projected.to(projector.dtype)
        self.edited_gram[layer] = gram

    def solve(self, layer: int, keys: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        projector = self.projectors[layer]
        if layer in self.projected_edited_covariance:
            return alphaedit_update(keys, residuals, projector, l2_weight=self.l2_weight,
                                    projected_edited_covariance=self.projected_edited_covariance[layer])
        if keys.shape[0] + self.edited_key_count(layer) >= PUSH_THROUGH_LIMIT * projector.dim:
            return alphaedit_update(keys, residuals, projector, l2_weight=self.l2_weight,
                                    earlier_keys=self.edited_keys.get(layer))
        return alphaedit_with_earlier(keys, residuals, projector, self.l2_weight, self.edited_keys.get(layer),
                                      self.projected_edited_keys.get(layer), self.edited_gram.get(layer))


def alphaedit_with_earlier(keys: torch.Tensor, residuals: torch.Tensor, projector: NullProjector, l2_weight: float,
                           earlier_keys: torch.Tensor | None = None, projected_earlier: torch.Tensor | None = None,
                           earlier_gram: torch.Tensor | None = None) -> torch.Tensor:
    """The push-through form for a batch when ``Kpᵀ``, ``Kpᵀ P`` and ``Kpᵀ P Kp`` are kept from
    earlier batches (what :class:`AlphaEditEditor` does): the batch costs ``u·d·k`` for its own
    projection (``k`` the projector factor's width), ``u·N·d`` for the new Gram blocks and
    ``N³/3 + N·d·d_out`` for the solve, instead of MEMIT's ``d³/3``."""
    check_keys_and_residuals(keys, residuals)
    k = as_float64(keys, "keys").to(projector.factor.device)
    r = as_float64(residuals, "residuals").to(k.device)
    projected = _project_rows(projector, k)
    if earlier_keys is None:
        return alphaedit_push_through(r, projected, k, l2_weight)
    old_keys = earlier_keys.to(torch.float64)
    cross = projected @ old_keys.T
    gram = torch.cat([torch.cat([projected @ k.T, cross], 1), torch.cat([cross.T, earlier_gram], 1)])
    return alphaedit_push_through(r, torch.cat([projected, projected_earlier.to(torch.float64)]),
                                  torch.cat([k, old_keys]), l2_weight, gram=gram)
