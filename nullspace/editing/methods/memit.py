"""MEMIT's batch update of one FFN output matrix (Meng et al., 2023; AlphaEdit paper Eq. 15).

Notation of the AlphaEdit paper with keys as columns: ``W`` maps keys ``k`` (d_in) to values
(d_out); ``K1`` holds the new edits' keys, ``R = V1 − W K1`` their residuals, ``K0 K0ᵀ`` the
preserved keys' second moment and ``Kp Kpᵀ`` the keys edited in earlier batches. MEMIT minimises
``‖(W + Δ) K1 − V1‖² + ‖Δ Kp‖² + λ‖Δ K0‖²`` and gets (Eq. 15, with MEMIT's weight λ on C0):

    Δ = R K1ᵀ (λ C0 + K1 K1ᵀ + Kp Kpᵀ)⁻¹.

In this package keys and residuals are stored as rows (``keys`` is ``K1ᵀ`` of shape ``(u, d_in)``),
the convention of :mod:`nullspace.linalg`; the update is returned as the paper's ``Δ``
(``(d_out, d_in)``, to be added to the weight viewed by :func:`nullspace.capture.weight_as_matrix`).
The solve runs in float64, as in the official code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from nullspace.editing.hparams import MEMIT_VARIANTS
from nullspace.editing.methods._solve import as_covariance, as_float64, check_keys_and_residuals
from nullspace.editing.methods.sequential import KeyValueEditor, TargetFunction, require_layers
from nullspace.validation import require_number

__all__ = ["MemitEditor", "memit_update", "solve_symmetric_psd"]


def memit_update(
    keys: torch.Tensor,
    residuals: torch.Tensor,
    key_covariance: torch.Tensor,
    *,
    covariance_weight: float,
    edited_covariance: torch.Tensor | None = None,
) -> torch.Tensor:
    """MEMIT's update ``Δ = R K1ᵀ (λ C0 + K1 K1ᵀ + Kp Kpᵀ)⁻¹`` (AlphaEdit Eq. 15).

    Args:
        keys: ``K1ᵀ``, the new keys as rows, shape ``(u, d_in)``.
        residuals: ``Rᵀ``, what each key's value must gain, shape ``(u, d_out)``.
        key_covariance: ``C0 = E[k kᵀ]`` over a text corpus, shape ``(d_in, d_in)``.
        covariance_weight: ``λ`` (official GPT-2 XL: 20000 on the per-token mean).
        edited_covariance: ``Kp Kpᵀ`` of earlier batches (sequential editing), or None.

    Returns:
        ``Δ`` of shape ``(d_out, d_in)``, float64.

    Raises:
        TypeError: an argument is not a real tensor (a Python list, a complex tensor) or λ is not a number.
        ValueError: λ is negative, NaN or infinite; a covariance is not a finite, symmetric, positive
            semi-definite ``(d_in, d_in)`` matrix; keys or residuals have the wrong shape or are not finite.
    """
    covariance_weight = require_number(covariance_weight, "covariance_weight λ", minimum=0.0,
                                       hint="MEMIT's λ weighs C0 against the new keys (official GPT-2 XL: 20000).")
    _, d_in, _ = check_keys_and_residuals(keys, residuals)
    k = as_float64(keys, "keys")
    r = as_float64(residuals, "residuals").to(k.device)
    c0 = as_covariance(key_covariance, "key_covariance", d_in, k.device)
    system = covariance_weight * c0 + k.T @ k
    if edited_covariance is not None:
        system = system + as_covariance(edited_covariance, "edited_covariance", d_in, k.device)
    # Δᵀ = A⁻¹ K1 Rᵀ with A symmetric, so Δ = R K1ᵀ A⁻¹.
    return solve_symmetric_psd(system, k.T @ r).T


def solve_symmetric_psd(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``A⁻¹ B`` for a symmetric positive semi-definite ``A`` (MEMIT's ``λ C0 + K Kᵀ + Kp Kpᵀ``).

    A key unit that is zero in ``C0``, in every new key and in every earlier key (a dead ReLU/GELU
    unit: the course model's block 1 has 7) makes ``A``'s row and column there zero. Such units
    are dropped from the solve and their rows of the result set to zero, the minimum-norm
    solution (what ``pinv`` gives) at the cost of the live block only. The live block is solved by
    Cholesky; an LU solve is tried only when Cholesky finds it not positive definite, and the
    pseudo-inverse only when LU finds it exactly singular.
    """
    live = system.diagonal() != 0
    if not bool(live.all()):
        live = (system != 0).any(dim=1)  # a zero diagonal entry of a PSD matrix means a zero row
        out = torch.zeros_like(rhs)
        out[live] = solve_symmetric_psd(system[live][:, live], rhs[live])
        return out
    factor, info = torch.linalg.cholesky_ex(system)
    if int(info) == 0:
        return torch.cholesky_solve(rhs, factor)
    solution, info = torch.linalg.solve_ex(system, rhs)
    if int(info) == 0:
        return solution
    return torch.linalg.pinv(system, hermitian=True) @ rhs


class MemitEditor(KeyValueEditor):
    """Sequential MEMIT at every edited layer, in one of two variants (``variant``):

    * ``"table1"``: the official runner's MEMIT, the baseline of AlphaEdit's Table 1: each batch
      solves ``λC0 + K1K1ᵀ`` with no cache of earlier edited keys (earlier edits simply stay in
      the weights; the runner's cached ``MEMIT_seq`` crashes on its first batch);
    * ``"eq15"``: Eq. 15 as the AlphaEdit paper writes it, with the cache ``Kp Kpᵀ`` of earlier
      batches: a stronger baseline than the paper's, since the cache also regularises the solve.

    ``ridge`` adds ``ridge · I`` to the system (not in any paper: the course's probe of why
    Table-1 MEMIT collapses on a key covariance with near-zero directions).
    """

    name = "MEMIT"

    def __init__(self, model, tokenizer, layers: Sequence[int], targets: TargetFunction, *,
                 key_covariances: Mapping[int, torch.Tensor], covariance_weight: float,
                 variant: str = "table1", ridge: float = 0.0, context_templates: Sequence[str] = ("{}",),
                 key_weighting: str = "grouped") -> None:
        if variant not in MEMIT_VARIANTS:
            raise ValueError(f"variant must be one of {MEMIT_VARIANTS} ('table1': no cache of edited keys, "
                             f"as AlphaEdit's Table 1; 'eq15': with it), got {variant!r}.")
        super().__init__(model, tokenizer, layers, targets, context_templates=context_templates,
                         key_weighting=key_weighting)
        self.covariance_weight = require_number(covariance_weight, "covariance_weight λ", minimum=0.0)
        require_layers(key_covariances, layers, "key covariance C0",
                        "compute them with nullspace.editing.statistics.key_statistics")
        ridge = require_number(ridge, "ridge", minimum=0.0, hint="0 is the official MEMIT system.")
        if ridge > 0 and self.covariance_weight <= 0:
            raise ValueError(f"ridge needs a positive covariance_weight λ, got ridge {ridge} and λ {covariance_weight}.")
        device = next(model.parameters()).device
        # λ(C0 + ridge/λ · I) = λC0 + ridge · I
        self.key_covariances = {layer: _with_ridge(as_covariance(key_covariances[layer], f"key_covariances[{layer}]",
                                                                 self.key_dim(layer), device),
                                                   ridge / covariance_weight if ridge else 0.0)
                                for layer in self.layers}
        self.variant = variant
        self.ridge = ridge
        self.keeps_edited_keys = variant == "eq15"

    def solve(self, layer: int, keys: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        return memit_update(keys, residuals, self.key_covariances[layer], covariance_weight=self.covariance_weight,
                            edited_covariance=self.edited_covariance.get(layer))


def _with_ridge(covariance: torch.Tensor, amount: float) -> torch.Tensor:
    return covariance + amount * torch.eye(len(covariance), dtype=covariance.dtype, device=covariance.device)
