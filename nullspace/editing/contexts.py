"""Context templates: the short prefixes over which keys and target vectors are averaged.

ROME and MEMIT read an edit's key, and optimise its target vector, not only on the bare prompt
(``"{}"``) but also after a few short texts, so that the edit holds whatever came before the
subject. The official code (``get_context_templates`` in ``memit_main.py``, ``rome_main.py`` and
``AlphaEdit_main.py``) samples those texts *from the model being edited*: top-5 sampling from
the five openings ``"The"``, ``"Therefore"``, ``"Because"``, ``"I"``, ``"You"``, each text cut
at ``length`` tokens (prompt included), braces replaced by spaces, and ``". {}"`` appended.

* MEMIT and AlphaEdit: five texts of 10 tokens (``MEMIT_CONTEXT_LENGTHS``), weighted ½ bare
  prompt, ½ the mean of the five in ``compute_ks`` (:func:`nullspace.editing.keys.context_weights`);
* ROME: ten texts of 5 tokens and ten of 10 (``ROME_CONTEXT_LENGTHS``), a flat mean.

The teaching model's vocabulary has ``"The"`` but not the four other openings, which its
tokenizer reads as ``<|unk|>``; the sampled texts keep that token, as the official code would.
Two course alternatives are switches of :class:`~nullspace.editing.hparams.MethodHyperParams`
(``context_source``): ``"world"`` takes first sentences of the general text
(:meth:`~nullspace.editing.world.facts.World.context_templates`), ``"bare"`` the prompt alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from nullspace.editing.evaluation.counterfact import generate

__all__ = ["MEMIT_CONTEXT_LENGTHS", "OFFICIAL_OPENINGS", "ROME_CONTEXT_LENGTHS", "sampled_context_templates"]

OFFICIAL_OPENINGS = ("The", "Therefore", "Because", "I", "You")
# (tokens per text, prompt included; number of texts), as in the official code
MEMIT_CONTEXT_LENGTHS = ((10, 5),)
ROME_CONTEXT_LENGTHS = ((5, 10), (10, 10))


def sampled_context_templates(model, tokenizer, lengths: Sequence[tuple[int, int]] = MEMIT_CONTEXT_LENGTHS, *,
                              openings: Sequence[str] = OFFICIAL_OPENINGS, seed: int = 0) -> tuple[str, ...]:
    """``("{}", "<sampled text>. {}", …)``: the bare prompt and texts sampled from ``model``.

    Args:
        lengths: ``(length, count)`` pairs: ``count`` texts of ``length`` tokens each, the
            openings used in turn (``count`` must be a multiple of ``len(openings)``).
        openings: the first word of the texts (the official five by default).
        seed: the sampling seed (the official code does not seed; a seed makes runs repeatable).
    """
    if not openings:
        raise ValueError("openings is empty: pass at least one opening word.")
    templates = ["{}"]
    for length, count in lengths:
        if count % len(openings):
            raise ValueError(f"count {count} is not a multiple of the {len(openings)} openings.")
        prompts = [opening for opening in openings for _ in range(count // len(openings))]
        texts = generate(model, tokenizer, prompts, max_length=length, seed=seed + length,
                         skip_special_tokens=False, known_words_only=False)
        templates += [_as_template(text, tokenizer.eos_token) for text in texts]
    return tuple(templates)


def _as_template(text: str, end_of_text: str | None) -> str:
    """The official clean-up: drop end-of-text tokens, braces become spaces, ``". {}"`` appended."""
    if end_of_text:
        text = text.replace(end_of_text, "")
    return text.replace("{", " ").replace("}", " ") + ". {}"
