"""Edit requests in the CounterFact schema, and question records in MEND's ZsRE schema.

A CounterFact record (ROME/MEMIT/AlphaEdit evaluation data) holds a ``requested_rewrite``
(``prompt`` with ``{}`` for the subject, ``subject``, ``target_new``, ``target_true``,
``relation_id``) and the prompts used to score it: ``paraphrase_prompts`` (generalization),
``neighborhood_prompts`` (specificity: other subjects with the same true object),
``attribute_prompts`` and ``generation_prompts`` (fluency, consistency).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# The end-of-text token the official ZsRE loader writes as every request's (unscored) true object.
END_OF_TEXT = "<|endoftext|>"
from nullspace.validation import require_int

__all__ = ["EditRequest", "QuestionRecord", "questions_from_zsre", "requests_from_counterfact"]


def _field(record: Mapping, key: str, where: str):
    try:
        return record[key]
    except KeyError:
        raise KeyError(f"{where} has no {key!r} field; expected the CounterFact/ZsRE schema "
                       f"(see nullspace.editing.requests). Keys present: {sorted(record)}.") from None


@dataclass(frozen=True)
class EditRequest:
    """One counterfactual edit: make ``prompt.format(subject)`` continue with ``target_new``."""

    case_id: int
    prompt: str
    subject: str
    target_new: str
    target_true: str
    relation_id: str
    paraphrase_prompts: tuple[str, ...] = ()
    neighborhood_prompts: tuple[str, ...] = ()
    attribute_prompts: tuple[str, ...] = ()
    generation_prompts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("prompt", "subject", "target_new", "target_true"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"case {self.case_id}: {name} must be a string, got {type(value).__name__} {value!r}.")
            if not value.strip():
                raise ValueError(f"case {self.case_id}: {name} is empty; give its text.")
        if self.prompt.count("{}") != 1:
            raise ValueError(f"case {self.case_id}: the prompt must contain one '{{}}' for the subject, "
                             f"got {self.prompt!r}.")
        if self.target_new.strip() == self.target_true.strip():
            raise ValueError(f"case {self.case_id}: target_new equals target_true ({self.target_new.strip()!r}); "
                             "a counterfactual edit must change the object.")

    @property
    def edit_prompt(self) -> str:
        """The request's prompt with the subject filled in."""
        return self.prompt.format(self.subject)

    @classmethod
    def from_counterfact(cls, record: Mapping) -> EditRequest:
        """Build a request from one CounterFact record."""
        where = f"CounterFact record {record.get('case_id', '?')}"
        rewrite = _field(record, "requested_rewrite", where)
        return cls(
            case_id=int(_field(record, "case_id", where)),
            prompt=_field(rewrite, "prompt", where),
            subject=_field(rewrite, "subject", where),
            target_new=_field(rewrite, "target_new", where)["str"],
            target_true=_field(rewrite, "target_true", where)["str"],
            relation_id=str(rewrite.get("relation_id", "")),
            paraphrase_prompts=tuple(record.get("paraphrase_prompts", ())),
            neighborhood_prompts=tuple(record.get("neighborhood_prompts", ())),
            attribute_prompts=tuple(record.get("attribute_prompts", ())),
            generation_prompts=tuple(record.get("generation_prompts", ())),
        )


@dataclass(frozen=True)
class QuestionRecord:
    """One record of MEND's ZsRE evaluation file (``zsre_mend_eval.json``), as the official
    ROME/MEMIT/AlphaEdit loader reads it: the question ``src`` about ``subject`` gets the answer
    ``answer`` (the file's ``answers[0]``: what the official edit inserts), ``rephrase`` asks the
    same, and the unrelated question ``loc`` (a Natural-Questions prompt without its question
    mark) must keep its answer ``loc_ans``. ``pred`` is the unedited model's answer when the file
    gives it (MEND's files do); ``alt`` is MEND's own alternative answer, kept for reference.
    """

    case_id: int
    subject: str
    src: str
    rephrase: str
    answer: str
    loc: str
    loc_ans: str
    pred: str = ""
    alt: str = ""

    @classmethod
    def from_zsre(cls, record: Mapping, case_id: int) -> QuestionRecord:
        """Read one record; ``case_id`` is its index in the file (the official loader's)."""
        where = f"ZsRE record {case_id}"
        answers = _field(record, "answers", where)
        if isinstance(answers, str) or not isinstance(answers, Sequence) or not answers:
            raise ValueError(f"{where}: 'answers' must be a non-empty list of strings (MEND's schema), "
                             f"got {answers!r}.")
        return cls(
            case_id=case_id,
            subject=_field(record, "subject", where),
            src=_field(record, "src", where),
            rephrase=_field(record, "rephrase", where),
            answer=answers[0],
            loc=_field(record, "loc", where),
            loc_ans=_field(record, "loc_ans", where),
            pred=str(record.get("pred", "")),
            alt=str(record.get("alt", "")),
        )

    def as_edit_request(self) -> EditRequest:
        """The question as an edit request, as the official loader builds it: the subject in
        ``src`` becomes ``{}``, the new object is ``answers[0]``; the true object is ``pred``
        (the official loader, which never scores it, writes ``<|endoftext|>``)."""
        if self.subject not in self.src:
            raise ValueError(f"case {self.case_id}: subject {self.subject!r} does not occur in {self.src!r}.")
        true = self.pred if self.pred and self.pred != self.answer else END_OF_TEXT
        return EditRequest(self.case_id, self.src.replace(self.subject, "{}", 1), self.subject,
                           self.answer, true, "zsre", paraphrase_prompts=(self.rephrase,))


def requests_from_counterfact(records: Iterable[Mapping], limit: int | None = None) -> list[EditRequest]:
    """The first ``limit`` (all when None) CounterFact records as edit requests."""
    if limit is not None:
        require_int(limit, "limit", minimum=0, hint="None keeps every record.")
    requests = [EditRequest.from_counterfact(r) for r in records]
    return requests if limit is None else requests[:limit]


def questions_from_zsre(records: Iterable[Mapping], limit: int | None = None) -> list[QuestionRecord]:
    """The first ``limit`` (all when None) records of a ZsRE file in MEND's schema."""
    questions = [QuestionRecord.from_zsre(r, case_id) for case_id, r in enumerate(records)]
    return questions if limit is None else questions[:limit]
