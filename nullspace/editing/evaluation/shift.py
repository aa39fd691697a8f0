"""How far editing moves the hidden states of preserved knowledge (AlphaEdit Fig. 5 analogue).

The hidden states at the subject's last token of facts that were *not* edited are read before
and after editing, projected onto the two leading principal directions of the unedited states,
and compared: a method that leaves preserved knowledge alone leaves the cloud where it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nullspace.editing import architectures
from nullspace.editing.keys import subject_token_index
from nullspace.editing.prompts import encode_right_padded

__all__ = ["mean_shift", "preserved_hidden_states", "principal_plane"]


@torch.no_grad()
def preserved_hidden_states(model, tokenizer, layer: int, prompts: Sequence[str], subjects: Sequence[str]
                            ) -> torch.Tensor:
    """Output of block ``layer`` at the subject's last token of ``prompts[i].format(subjects[i])``,
    ``(len(prompts), d_model)``; independent of the tokenizer's padding side."""
    if len(prompts) != len(subjects):
        raise ValueError(f"got {len(prompts)} prompts but {len(subjects)} subjects: give one subject per prompt.")
    if not prompts:
        raise ValueError("no prompts given: pass at least one (prompt, subject) pair.")
    positions = torch.tensor([subject_token_index(tokenizer, p, s) for p, s in zip(prompts, subjects)])
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    handle = architectures.block(model, layer).register_forward_hook(
        lambda _m, _i, out: captured.append((out[0] if isinstance(out, tuple) else out).detach()))
    try:
        model(**encode_right_padded(tokenizer, [p.format(s) for p, s in zip(prompts, subjects)], device,
                                    argument="prompts"))
    finally:
        handle.remove()
    return captured[0][torch.arange(len(prompts)), positions.to(device)].float().cpu()


def principal_plane(reference: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Coordinates of ``reference`` and ``others`` in the plane of ``reference``'s two leading
    principal directions (centred on ``reference``'s mean)."""
    mean = reference.mean(0)
    _, _, v = torch.linalg.svd(reference - mean, full_matrices=False)
    plane = v[:2].T
    return [(x - mean) @ plane for x in (reference, *others)]


def mean_shift(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean over facts of ``‖h_after − h_before‖ / ‖h_before‖``."""
    return float(((after - before).norm(dim=1) / before.norm(dim=1)).mean())
