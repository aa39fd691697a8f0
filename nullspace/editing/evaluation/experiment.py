"""A sequential-editing experiment: batches of edits, general ability tracked along the way,
CounterFact-style scores at the end (the protocol of AlphaEdit Table 1 and Fig. 4).

AlphaEdit edits 2000 CounterFact requests in batches of 100 and evaluates once at the end; it
tracks general capability every few batches. Here the general ability is the accuracy on every
unedited fact of the fact world and the perplexity of held-out text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.evaluation.counterfact import (
    consistency,
    counterfact_scores,
    fact_accuracy,
    fluency,
    generate,
    perplexity,
)
from nullspace.editing.requests import EditRequest
from nullspace.editing.methods.sequential import SequentialEditor, check_batch
from nullspace.settings import progress
from nullspace.validation import require_int

__all__ = ["SCORE_COLUMNS", "ExperimentResult", "GeneralAbilityProbe", "generation_scores", "harmonic_score",
           "run_sequential_editing", "score_header", "score_row"]

# The columns of a Table-1-style row: (score key, header); probabilities ×100 except perplexity.
SCORE_COLUMNS = (("efficacy", "Eff"), ("generalization", "Gen"), ("specificity", "Spe"),
                 ("efficacy_top1", "Eff@1"), ("generalization_top1", "Gen@1"), ("specificity_top1", "Spe@1"),
                 ("fluency", "Flu"), ("consistency", "Consis"), ("fact_accuracy", "FactAcc"),
                 ("unlisted_fact_accuracy", "Unl"), ("perplexity", "PPL"))


@dataclass
class GeneralAbilityProbe:
    """What "general ability" means here: facts that no request touches, and held-out text.

    ``fact_prompts`` are facts of preserved people whose keys may be listed in ``K0``
    (:mod:`nullspace.editing.preserved`); ``unlisted_fact_prompts``, when given, are facts of
    preserved people left out of ``K0``, so that a run shows whether protection reaches knowledge
    the method was not told about (``unlisted_fact_accuracy``).
    """

    fact_prompts: Sequence[str]
    fact_objects: Sequence[str]
    heldout_texts: Sequence[str]
    unlisted_fact_prompts: Sequence[str] = ()
    unlisted_fact_objects: Sequence[str] = ()

    def __post_init__(self) -> None:
        for prompts, objects, what in ((self.fact_prompts, self.fact_objects, "fact"),
                                       (self.unlisted_fact_prompts, self.unlisted_fact_objects, "unlisted_fact")):
            if len(prompts) != len(objects):
                raise ValueError(f"{what}_prompts has {len(prompts)} prompts but {what}_objects has {len(objects)} "
                                 "objects: give one object per prompt.")
        if not self.fact_prompts:
            raise ValueError("fact_prompts is empty: the probe needs at least one unedited fact to ask.")
        if not self.heldout_texts:
            raise ValueError("heldout_texts is empty: the probe needs held-out text for the perplexity.")

    def measure(self, model, tokenizer) -> dict[str, float]:
        scores = {"fact_accuracy": fact_accuracy(model, tokenizer, self.fact_prompts, self.fact_objects),
                  "perplexity": perplexity(model, tokenizer, self.heldout_texts)}
        if self.unlisted_fact_prompts:
            scores["unlisted_fact_accuracy"] = fact_accuracy(model, tokenizer, self.unlisted_fact_prompts,
                                                             self.unlisted_fact_objects)
        return scores


@dataclass
class ExperimentResult:
    """Final scores (×100 except perplexity) and the general-ability history of one run."""

    method: str
    setting: str
    scores: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds_per_batch: float = float("nan")


def score_header(name_width: int) -> str:
    """The header line of :func:`score_row`'s table."""
    return " " * (name_width + 1) + " ".join(f"{header:>7}" for _, header in SCORE_COLUMNS)


def score_row(name: str, scores: dict[str, float], name_width: int) -> str:
    """One Table-1-style row: ``name`` and every score of :data:`SCORE_COLUMNS` (nan if absent)."""
    cells = [f"{scores.get(key, float('nan')):7.{2 if key == 'perplexity' else 1}f}" for key, _ in SCORE_COLUMNS]
    return f"{name:>{name_width}} " + " ".join(cells)


def harmonic_score(scores: dict[str, float]) -> float:
    """ROME's summary score S: the harmonic mean of efficacy, generalization and specificity."""
    parts = [scores["efficacy"], scores["generalization"], scores["specificity"]]
    return 0.0 if min(parts) <= 0 else float(len(parts) / sum(1 / p for p in parts))


def generation_scores(model, tokenizer, requests: Sequence[EditRequest],
                      reference_texts: dict[str, list[str]] | None = None,
                      vectorizer: TfidfVectorizer | None = None) -> dict[str, float]:
    """Fluency of generations from each request's first generation prompt and, when references
    and a fitted ``vectorizer`` are given, their consistency with texts about the new object.
    Requests without generation prompts are skipped.

    Raises:
        ValueError: no request has a generation prompt.
    """
    prompted = [r for r in requests if r.generation_prompts]
    if not prompted:
        raise ValueError("no request has generation_prompts, so there is nothing to generate from: pass requests "
                         "with generation prompts (or skip the generation scores: generation_requests=0).")
    texts = generate(model, tokenizer, [r.generation_prompts[0] for r in prompted])
    scores = {"fluency": fluency(texts)}
    if reference_texts is not None and vectorizer is not None:
        scores["consistency"] = float(np.mean([
            consistency([text], reference_texts.get(r.target_new, []), vectorizer)
            for text, r in zip(texts, prompted)]))
    return scores


def run_sequential_editing(
    editor: SequentialEditor,
    tokenizer,
    requests: Sequence[EditRequest],
    batch_size: int,
    probe: GeneralAbilityProbe,
    *,
    setting: str = "",
    every: int = 2,
    generation_requests: int = 50,
    reference_texts: dict[str, list[str]] | None = None,
    vectorizer: TfidfVectorizer | None = None,
) -> ExperimentResult:
    """Reset ``editor``, edit ``requests`` in batches, and score the edited model.

    General ability is measured before editing and after every ``every`` batches. Fluency and
    consistency use the generation prompts of the first ``generation_requests`` requests;
    consistency needs ``reference_texts[object]`` (texts about each new object) and a fitted
    ``vectorizer``; ``generation_requests=0`` skips fluency and consistency.

    Every argument is checked, and every batch (no contradictory requests), before the first edit.

    Raises:
        TypeError: ``editor`` is not a :class:`SequentialEditor`; a request is not an
            :class:`EditRequest`; a count is not an integer.
        ValueError: ``requests`` is empty; ``batch_size`` or ``every`` below 1;
            ``generation_requests`` negative; a batch holds contradictory requests.
    """
    if not isinstance(editor, SequentialEditor):
        raise TypeError(f"editor must be an editor (workbench.editor(method), MemitEditor(...)), got "
                        f"{type(editor).__name__}.")
    batch_size = require_int(batch_size, "batch_size", minimum=1,
                             hint="It is the number of requests edited at once (AlphaEdit: 100).")
    every = require_int(every, "every", minimum=1, hint="General ability is measured after every `every` batches.")
    generation_requests = require_int(generation_requests, "generation_requests", minimum=0)
    if isinstance(requests, EditRequest) or not requests:
        raise ValueError("requests must be a non-empty list of EditRequest: with no request nothing is edited, "
                         "and the unedited model's scores would be reported as the result.")
    batches = [check_batch(requests[i:i + batch_size]) for i in range(0, len(requests), batch_size)]
    editor.reset()
    model = editor.model
    history: dict[str, list[float]] = {"edits": [0], **{k: [v] for k, v in probe.measure(model, tokenizer).items()}}
    for index, batch in enumerate(progress(batches, desc=f"{editor.name} {setting}".strip()), start=1):
        editor.edit(batch)
        if index % every == 0 or index == len(batches):
            history["edits"].append(editor.edits_done)
            for key, value in probe.measure(model, tokenizer).items():
                history[key].append(value)
    scores = counterfact_scores(model, tokenizer, requests).as_dict()
    scores.update({key: values[-1] for key, values in history.items() if key != "edits"})
    if generation_requests:
        scores.update(generation_scores(model, tokenizer, list(requests[:generation_requests]), reference_texts,
                                        vectorizer))
    return ExperimentResult(editor.name, setting, scores, history, float(np.mean(editor.batch_seconds)))
