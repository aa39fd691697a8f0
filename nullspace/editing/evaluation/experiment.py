"""A sequential-editing experiment as AlphaEdit's official runner does it (Table 1 and Fig. 4).

The runner edits ``N`` requests in batches of ``B``, one batch after another on the same model,
and scores every edited request once, at the end, as the official ``experiments/evaluate.py``
does; along the way it tracks *general ability* every ``k`` batches (the paper runs six GLUE-style
tasks; here: accuracy on facts no request touches, perplexity of held-out text, and the weight
change ``‖W − W_unedited‖_F`` of every edited layer).

Nothing here depends on the course model: :func:`run_sequential_editing` takes an editor (which
holds the model), its tokenizer, the requests, a probe of general ability and an evaluation
(:class:`CounterFactEvaluation` or :class:`ZsreEvaluation`), so a user's own model and the
official CounterFact or ZsRE files plug in unchanged. :meth:`ExperimentResult.as_dict` gives a
JSON-ready row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.evaluation.counterfact import (
    OFFICIAL_GENERATION_LENGTH,
    OFFICIAL_LOC_SUFFIX,
    consistency,
    counterfact_scores,
    fact_accuracy,
    fluency,
    generate,
    perplexity,
    zsre_scores,
)
from nullspace.editing.methods.sequential import SequentialEditor, check_batch
from nullspace.editing.requests import EditRequest, QuestionRecord
from nullspace.settings import progress
from nullspace.validation import require_int

__all__ = [
    "SCORE_COLUMNS",
    "CounterFactEvaluation",
    "ExperimentResult",
    "GeneralAbilityProbe",
    "ZsreEvaluation",
    "generation_scores",
    "harmonic_score",
    "run_sequential_editing",
    "score_header",
    "score_row",
]

# The columns of a Table-1-style row: (score key, header); probabilities ×100 except perplexity.
SCORE_COLUMNS = (("efficacy", "Eff"), ("generalization", "Gen"), ("specificity", "Spe"),
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
        """``fact_accuracy`` and ``unlisted_fact_accuracy`` (top-1, ×100) and ``perplexity``."""
        scores = {"fact_accuracy": fact_accuracy(model, tokenizer, self.fact_prompts, self.fact_objects),
                  "perplexity": perplexity(model, tokenizer, self.heldout_texts)}
        if self.unlisted_fact_prompts:
            scores["unlisted_fact_accuracy"] = fact_accuracy(model, tokenizer, self.unlisted_fact_prompts,
                                                             self.unlisted_fact_objects)
        return scores


def generation_scores(model, tokenizer, requests: Sequence[EditRequest],
                      reference_texts: Mapping[str, Sequence[str]] | None = None,
                      vectorizer: TfidfVectorizer | None = None, *,
                      max_length: int = OFFICIAL_GENERATION_LENGTH) -> dict[str, float]:
    """Fluency and consistency as the official runner scores a record: one text per generation
    prompt (top-5 sampling, ``max_length`` tokens in all), the record's n-gram entropy the mean
    over its texts, its consistency the TF-IDF cosine between its texts joined and the reference
    texts about its new object joined (needs ``reference_texts`` and a fitted ``vectorizer``);
    both averaged over records, ×100."""
    scored = [r for r in requests if r.generation_prompts]
    if not scored:
        raise ValueError("no request has generation prompts: fluency cannot be measured.")
    prompts = [prompt for r in scored for prompt in r.generation_prompts]
    texts = iter(generate(model, tokenizer, prompts, max_length=max_length))
    fluencies, consistencies = [], []
    for request in scored:
        own = [next(texts) for _ in request.generation_prompts]
        fluencies.append(fluency(own))
        if reference_texts is not None and vectorizer is not None:
            consistencies.append(consistency(own, reference_texts.get(request.target_new, []), vectorizer))
    scores = {"fluency": float(np.mean(fluencies))}
    if consistencies:
        scores["consistency"] = float(np.mean(consistencies))
    return scores


@dataclass
class CounterFactEvaluation:
    """Scores edited CounterFact requests as the official runner does: efficacy, generalization
    and specificity for every request; fluency and consistency (generation) for every
    ``generation_interval``-th request (the official ``--generation_test_interval``)."""

    generation_interval: int = 10
    reference_texts: Mapping[str, Sequence[str]] | None = None
    vectorizer: TfidfVectorizer | None = None
    max_length: int = OFFICIAL_GENERATION_LENGTH

    def __post_init__(self) -> None:
        require_int(self.generation_interval, "generation_interval", minimum=1)

    def __call__(self, model, tokenizer, requests: Sequence[EditRequest]) -> dict[str, float]:
        scores = counterfact_scores(model, tokenizer, requests).as_dict()
        scores.update(generation_scores(model, tokenizer, list(requests[::self.generation_interval]),
                                        self.reference_texts, self.vectorizer, max_length=self.max_length))
        return scores


@dataclass
class ZsreEvaluation:
    """Scores edited ZsRE records as the official runner does (:func:`zsre_scores`); the edited
    requests must be ``records[i].as_edit_request()`` in the same order."""

    records: Sequence[QuestionRecord]
    loc_suffix: str = OFFICIAL_LOC_SUFFIX

    def __call__(self, model, tokenizer, requests: Sequence[EditRequest]) -> dict[str, float]:
        by_case = {r.case_id: r for r in self.records}
        missing = [r.case_id for r in requests if r.case_id not in by_case]
        if missing:
            raise ValueError(f"requests {missing[:5]} have no ZsRE record: build the requests with "
                             "record.as_edit_request() from the same records.")
        return zsre_scores(model, tokenizer, [by_case[r.case_id] for r in requests], loc_suffix=self.loc_suffix)


Evaluation = Callable[[object, object, Sequence[EditRequest]], dict]


@dataclass
class ExperimentResult:
    """One run: final scores (×100 except perplexity), the weight change per edited layer, and the
    general-ability history (``edits`` and each probe score after every ``every`` batches, and
    ``weight_change`` per layer), with the editing wall time."""

    method: str
    variant: str
    setting: str
    edits: int
    batch: int
    scores: dict[str, float]
    weight_change: dict[int, float]
    history: dict = field(default_factory=dict)
    edit_seconds: float = float("nan")

    @property
    def seconds_per_batch(self) -> float:
        batches = -(-self.edits // self.batch)
        return self.edit_seconds / batches

    def as_dict(self) -> dict:
        """A JSON-ready row: ``method``, ``variant``, ``setting``, ``edits``, ``batch``, every score,
        ``weight_change`` per layer (keys are layer numbers as strings), ``history``, seconds."""
        return {"method": self.method, "variant": self.variant, "setting": self.setting, "edits": self.edits,
                "batch": self.batch, **{k: float(v) for k, v in self.scores.items()},
                "weight_change": {str(layer): float(v) for layer, v in self.weight_change.items()},
                "history": self.history, "edit_seconds": float(self.edit_seconds)}


def score_header(name_width: int) -> str:
    """The header line of :func:`score_row`'s table."""
    return " " * (name_width + 1) + " ".join(f"{header:>7}" for _, header in SCORE_COLUMNS)


def score_row(name: str, scores: Mapping[str, float], name_width: int) -> str:
    """One Table-1-style row: ``name`` and every score of :data:`SCORE_COLUMNS` (nan if absent)."""
    cells = [f"{scores.get(key, float('nan')):7.{2 if key == 'perplexity' else 1}f}" for key, _ in SCORE_COLUMNS]
    return f"{name:>{name_width}} " + " ".join(cells)


def harmonic_score(scores: Mapping[str, float]) -> float:
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
    edits: int | None = None,
    every: int = 1,
    evaluation: Evaluation | None = None,
    setting: str = "",
    variant: str = "",
    after_batch: Callable[[int, int], None] | None = None,
) -> ExperimentResult:
    """Reset ``editor``, edit the first ``edits`` requests (all when None) in batches of
    ``batch_size``, then score them with ``evaluation`` (default: :class:`CounterFactEvaluation`
    without consistency).

    General ability (``probe``) and the weight change are measured before editing, after every
    ``every`` batches and after the last. ``after_batch``, when given, is called with the number
    of batches and of edits done, before the first edit (``0, 0``) and after every batch (the
    runner's hook for measurements on their own cadence, such as the GLUE tasks). Every argument
    is checked, and every batch, before the first edit.

    Raises:
        TypeError: ``editor`` is not a :class:`SequentialEditor`; a count is not an integer.
        ValueError: ``requests`` is empty; ``batch_size``, ``every`` or ``edits`` below 1; more edits
            than requests; a case id repeats; a batch holds contradictory requests.
    """
    if not isinstance(editor, SequentialEditor):
        raise TypeError(f"editor must be an editor (workbench.editor(method), MemitEditor(...)), got "
                        f"{type(editor).__name__}.")
    batch_size = require_int(batch_size, "batch_size", minimum=1,
                             hint="It is the number of requests edited at once (AlphaEdit: 100).")
    every = require_int(every, "every", minimum=1, hint="General ability is measured after every `every` batches.")
    if isinstance(requests, EditRequest) or not requests:
        raise ValueError("requests must be a non-empty list of EditRequest: with no request nothing is edited, "
                         "and the unedited model's scores would be reported as the result.")
    count = len(requests) if edits is None else require_int(edits, "edits", minimum=1)
    if count > len(requests):
        raise ValueError(f"asked for {count} edits but only {len(requests)} requests were given; "
                         "pass fewer edits or more requests (no request is edited twice).")
    chosen = list(requests[:count])
    case_ids = [r.case_id for r in chosen]
    if len(set(case_ids)) != len(case_ids):
        raise ValueError("the requests repeat a case_id: a sequential run must not edit the same request twice.")
    evaluation = evaluation or CounterFactEvaluation()
    editor.reset()
    model = editor.model
    history: dict = {"edits": [0]}

    def measure() -> None:
        for key, value in probe.measure(model, tokenizer).items():
            history.setdefault(key, []).append(value)
        for layer, change in editor.weight_change().items():
            history.setdefault("weight_change", {}).setdefault(str(layer), []).append(change)

    measure()
    batches = [check_batch(chosen[i:i + batch_size]) for i in range(0, count, batch_size)]
    if after_batch is not None:
        after_batch(0, 0)
    for index, batch in enumerate(progress(batches, desc=f"{editor.name} {setting}".strip()), start=1):
        editor.edit(batch)
        if after_batch is not None:
            after_batch(index, editor.edits_done)
        if index % every == 0 or index == len(batches):
            history["edits"].append(editor.edits_done)
            measure()
    scores = evaluation(model, tokenizer, chosen)
    scores.update({key: values[-1] for key, values in history.items() if key not in {"edits", "weight_change"}})
    return ExperimentResult(editor.name, variant, setting, count, batch_size, scores, editor.weight_change(),
                            history, float(np.sum(editor.batch_seconds)))
