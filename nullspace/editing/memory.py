"""The FFN output matrix as a linear key–value memory (AlphaEdit Eq. 1–2, 5–6).

Conventions: ``W`` is the mathematical matrix of shape ``(d_out, d_in)`` with ``v = W k``
(for GPT-2's ``c_proj``, ``W = weight.T``; see :func:`nullspace.capture.weight_as_matrix`); keys
and values are stored as rows, ``K`` of shape ``(n, d_in)``, so the paper's column matrix is ``Kᵀ``.
"""

from __future__ import annotations

import torch
from torch import nn

from nullspace.validation import require_number

__all__ = ["ffn_key_value", "least_squares_update", "rank_one_update"]


def ffn_key_value(block: nn.Module, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Key and value of a GPT-2 block's FFN for residual-stream states ``hidden`` (AlphaEdit Eq. 2).

    ``k = σ(W_in γ(h))`` (γ: the block's second layer norm ``ln_2``; σ: its activation) and
    ``v = W_out k`` (+ the bias of ``c_proj``). Here ``h`` is the residual stream after the
    block's attention (``h^{l-1} + a^l`` in Eq. 1).
    """
    mlp = block.mlp
    key = mlp.act(mlp.c_fc(block.ln_2(hidden)))
    return key, mlp.c_proj(key)


def rank_one_update(weight: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """The smallest ``Δ`` (Frobenius norm) with ``(W + Δ) k = v``: ``Δ = (v − W k) kᵀ / (kᵀ k)``.

    It ignores every other key, so any key ``k0`` with ``kᵀ k0 ≠ 0`` is changed too.
    Raises ``ValueError`` for a zero key (no update can write through it).
    """
    if not bool((key != 0).any()):
        raise ValueError("key is zero: no update of W can change W k. Pass the key of the fact to edit.")
    residual = value - weight @ key
    return torch.outer(residual, key) / (key @ key)


def least_squares_update(weight: torch.Tensor, preserved_keys: torch.Tensor, new_keys: torch.Tensor,
                         new_values: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """AlphaEdit Eq. 6: ``Δ = (V1 − W K1) K1ᵀ (K0 K0ᵀ + K1 K1ᵀ)⁻¹`` (columns as in the paper).

    ``Δ`` minimises ``‖(W + Δ) K1 − V1‖² + ‖(W + Δ) K0 − W K0‖²`` (Eq. 5, with ``V0 = W K0``):
    write the new facts while keeping the outputs on the preserved keys. ``preserved_keys``
    ``(n0, d_in)``, ``new_keys`` ``(n1, d_in)`` and ``new_values`` ``(n1, d_out)`` hold one key or value
    per row. ``ridge · I`` is added to the matrix to invert, which is singular when the keys do
    not span all ``d_in`` directions. Computed in float64; returned in ``weight``'s dtype.
    """
    ridge = require_number(ridge, "ridge", minimum=0.0, hint="It is the εI that makes the matrix invertible.")
    if new_keys.ndim != 2 or new_values.ndim != 2 or len(new_keys) != len(new_values):
        raise ValueError(f"new_keys (n1, d_in) and new_values (n1, d_out) need one row per fact; got "
                         f"{tuple(new_keys.shape)} and {tuple(new_values.shape)}. Use key[None] for one fact.")
    if preserved_keys.shape[-1] != new_keys.shape[-1] or weight.shape[1] != new_keys.shape[-1]:
        raise ValueError(f"key dimension mismatch: W is {tuple(weight.shape)}, preserved keys "
                         f"{tuple(preserved_keys.shape)}, new keys {tuple(new_keys.shape)}.")
    w, k0, k1, v1 = (t.detach().double() for t in (weight, preserved_keys, new_keys, new_values))
    residual = v1.T - w @ k1.T                                   # R = V1 − W K1, (d_out, n1)
    gram = k0.T @ k0 + k1.T @ k1 + ridge * torch.eye(w.shape[1], dtype=torch.float64)
    delta = torch.linalg.solve(gram, k1.T @ residual.T).T        # R K1ᵀ (K0K0ᵀ + K1K1ᵀ)⁻¹ (gram symmetric)
    return delta.to(weight.dtype)
