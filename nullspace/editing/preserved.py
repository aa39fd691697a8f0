"""The keys of preserved knowledge, ``K0`` as AlphaEdit defines it (Eq. 5–10).

AlphaEdit's guarantee ``(W + ΔP) K0 = W K0`` (Eq. 10) protects exactly the keys in ``K0``. The
official code estimates ``K0 K0ᵀ`` by the per-token key covariance of a text corpus
(:mod:`nullspace.editing.statistics`), where a subject's key is one token among many and most of
the mass belongs to function words. The paper describes ``K0`` as the keys of *preserved facts*.
This module builds that matrix: the keys at the subject's last token of every fact prompt about
a list of people, and the covariance that adds their second moment to the corpus one,

    C0(α) = E_tokens[k kᵀ] + α · E_facts[k kᵀ],

so that ``α = 0`` is the official statistic and ``α > 0`` tells MEMIT's penalty, ROME's metric and
AlphaEdit's projector which facts to preserve. Facts that are left out of the list are protected
only as far as their keys resemble the listed ones; the editing benchmark measures both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nullspace.editing.keys import compute_ks
from nullspace.editing.world.facts import Person, World
from nullspace.linalg import validate_covariance
from nullspace.validation import require_increasing_layers, require_number, require_real_tensor

__all__ = ["knowledge_covariance", "preserved_fact_keys"]


def preserved_fact_keys(model: nn.Module, tokenizer, world: World, people: Sequence[Person],
                        layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """The keys ``K0`` of every fact of ``people`` at each of ``layers``, one row per fact prompt.

    Every biography-style template and every question about each person is read at the
    person's (one-token) name, as :func:`~nullspace.editing.keys.compute_ks` reads an edit's key.
    Returns float64 tensors of shape ``(prompts, d_ff)``.
    """
    if not people:
        raise ValueError("no people given: K0 needs at least one preserved fact.")
    layers = require_increasing_layers(layers, "layers")
    prompts, subjects = [], []
    for person in people:
        for kind in ("templates", "questions"):
            for _, prompt, _ in world.fact_prompts(person, kind):
                prompts.append(prompt.replace(person.name, "{}", 1))
                subjects.append(person.name)
    return {layer: compute_ks(model, tokenizer, layer, prompts, subjects).double() for layer in layers}


def knowledge_covariance(corpus_covariance: torch.Tensor, fact_keys: torch.Tensor | None,
                         weight: float) -> torch.Tensor:
    """``C0(α) = corpus_covariance + α · K0ᵀK0 / n`` (float64), with the facts' keys as rows.

    ``weight = 0`` returns the corpus statistic unchanged (the official code's ``C0``).

    Raises:
        TypeError / ValueError: ``weight`` is not a finite number ≥ 0; ``corpus_covariance`` is not a
            finite symmetric matrix; the keys are missing or of another dimension.
    """
    weight = require_number(weight, "weight α of the preserved facts' keys", minimum=0.0,
                            hint="0 is the official corpus statistic; the course model uses 1.")
    covariance = validate_covariance(corpus_covariance, name="corpus_covariance", device=None)
    if weight == 0:
        return covariance
    if fact_keys is None or len(fact_keys) == 0:
        raise ValueError("a positive weight needs the preserved facts' keys: compute them with "
                         "preserved_fact_keys(model, tokenizer, world, people, layers).")
    keys = require_real_tensor(fact_keys, "fact_keys").to(covariance.device, torch.float64)
    if keys.ndim != 2 or keys.shape[1] != covariance.shape[0]:
        raise ValueError(f"the facts' keys have dimension {keys.shape[1]} but C0 is "
                         f"{tuple(covariance.shape)}: were they read at the same layer?")
    return covariance + weight * (keys.T @ keys) / len(keys)
