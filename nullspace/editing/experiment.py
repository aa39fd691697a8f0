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

from nullspace.editing.evaluation import (
    consistency,
    counterfact_scores,
    fact_accuracy,
    fluency,
    generate,
    perplexity,
)
from nullspace.editing.requests import EditRequest
from nullspace.editing.sequential import SequentialEditor
from nullspace.settings import progress

__all__ = ["ExperimentResult", "GeneralAbilityProbe", "harmonic_score", "run_sequential_editing"]


@dataclass
class GeneralAbilityProbe:
    """What "general ability" means here: facts that no request touches, and held-out text."""

    fact_prompts: Sequence[str]
    fact_objects: Sequence[str]
    heldout_texts: Sequence[str]

    def measure(self, model, tokenizer) -> dict[str, float]:
        return {"fact_accuracy": fact_accuracy(model, tokenizer, self.fact_prompts, self.fact_objects),
                "perplexity": perplexity(model, tokenizer, self.heldout_texts)}


@dataclass
class ExperimentResult:
    """Final scores (×100 except perplexity) and the general-ability history of one run."""

    method: str
    setting: str
    scores: dict[str, float]
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds_per_batch: float = float("nan")


def harmonic_score(scores: dict[str, float]) -> float:
    """ROME's summary score S: the harmonic mean of efficacy, generalization and specificity."""
    parts = [scores["efficacy"], scores["generalization"], scores["specificity"]]
    return 0.0 if min(parts) <= 0 else float(len(parts) / sum(1 / p for p in parts))


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
    ``vectorizer``.
    """
    editor.reset()
    model = editor.model
    history: dict[str, list[float]] = {"edits": [0], **{k: [v] for k, v in probe.measure(model, tokenizer).items()}}
    batches = [list(requests[i:i + batch_size]) for i in range(0, len(requests), batch_size)]
    for index, batch in enumerate(progress(batches, desc=f"{editor.name} {setting}".strip()), start=1):
        editor.edit(batch)
        if index % every == 0 or index == len(batches):
            history["edits"].append(editor.edits_done)
            for key, value in probe.measure(model, tokenizer).items():
                history[key].append(value)
    scores = counterfact_scores(model, tokenizer, requests).as_dict()
    scores.update(fact_accuracy=history["fact_accuracy"][-1], perplexity=history["perplexity"][-1])
    scored = list(requests[:generation_requests])
    texts = generate(model, tokenizer, [r.generation_prompts[0] for r in scored if r.generation_prompts])
    scores["fluency"] = fluency(texts)
    if reference_texts is not None and vectorizer is not None:
        scores["consistency"] = float(np.mean([
            consistency([text], reference_texts.get(r.target_new, []), vectorizer)
            for text, r in zip(texts, scored)]))
    return ExperimentResult(editor.name, setting, scores, history, float(np.mean(editor.batch_seconds)))
