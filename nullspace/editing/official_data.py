"""The papers' evaluation data, read from the user's own folder in the official file formats.

One setting, ``NULLSPACE_DATA_DIR``, names the folder; the course never downloads anything. Put
the files there under the names the official code (ROME/MEMIT/AlphaEdit ``dsets``) uses:

======================  =====================================================================
``counterfact.json``    CounterFact: a list of records with ``case_id``, ``requested_rewrite``
                        (``prompt`` with ``{}``, ``subject``, ``target_new.str``,
                        ``target_true.str``, ``relation_id``), ``paraphrase_prompts``,
                        ``neighborhood_prompts``, ``attribute_prompts``, ``generation_prompts``
``multi_counterfact.json``  multi-CounterFact (MEMIT's larger set), the same schema
``zsre_mend_eval.json`` ZsRE in MEND's evaluation schema: ``subject``, ``src``, ``rephrase``,
                        ``answers``, ``alt``, ``loc``, ``loc_ans``; the official edit inserts
                        ``answers[0]`` and appends ``"?"`` to ``loc``
``attribute_snippets.json``  Wikipedia snippets per (relation, object) for consistency: a list of
                        ``{relation_id, target_id, samples: [{text, ...}]}``
``idf.npy``, ``tfidf_vocab.json``  the TF-IDF statistics consistency uses
``corpus/``             the corpus for ``C0`` (:mod:`nullspace.editing.corpus`)
======================  =====================================================================

The course's own world files (``data/world``) follow the same schemas, so the same functions read
them when given that folder.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.requests import EditRequest, QuestionRecord, questions_from_zsre
from nullspace.settings import data_dir

__all__ = ["FILES", "MissingDataError", "attribute_snippets", "counterfact_requests", "data_file",
           "tfidf_vectorizer", "zsre_records", "zsre_requests"]

FILES = {
    "counterfact": "counterfact.json",
    "multi_counterfact": "multi_counterfact.json",
    "zsre": "zsre_mend_eval.json",
    "attribute_snippets": "attribute_snippets.json",
    "idf": "idf.npy",
    "tfidf_vocab": "tfidf_vocab.json",
    "corpus": "corpus",
}


class MissingDataError(FileNotFoundError):
    """A data file the experiment needs is not in the data folder."""


def data_file(kind: str, folder: Path | str | None = None) -> Path:
    """The path of ``kind`` (a key of :data:`FILES`) in ``folder`` (default ``NULLSPACE_DATA_DIR``).

    Raises:
        MissingDataError: no folder is set, or the file is not there (the message says where to put it).
    """
    if kind not in FILES:
        raise ValueError(f"unknown data kind {kind!r}; choose one of {sorted(FILES)}.")
    root = Path(folder).expanduser() if folder is not None else data_dir()
    if root is None:
        raise MissingDataError(f"no data folder: set NULLSPACE_DATA_DIR to the folder holding {FILES[kind]} "
                               "(the course never downloads the papers' data).")
    path = root / FILES[kind]
    if not path.exists():
        raise MissingDataError(f"{FILES[kind]} is not in the data folder {root}: put your copy of it at {path} "
                               "(the file of the official ROME/MEMIT/AlphaEdit code, same name and format).")
    return path


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); replace it with an intact copy.") from err


def counterfact_requests(folder: Path | str | None = None, *, multi: bool = False,
                         limit: int | None = None) -> list[EditRequest]:
    """CounterFact (or multi-CounterFact) records as edit requests, the first ``limit`` of them.

    Raises:
        MissingDataError: the file is missing.
        ValueError: the file holds fewer than ``limit`` records, or is not the CounterFact schema.
    """
    path = data_file("multi_counterfact" if multi else "counterfact", folder)
    records = _json(path)
    if not isinstance(records, list):
        raise ValueError(f"{path} must hold a JSON list of CounterFact records, got {type(records).__name__}.")
    if limit is not None and len(records) < limit:
        raise ValueError(f"{path} holds {len(records)} records but {limit} edits were asked for; ask for fewer.")
    return [EditRequest.from_counterfact(r) for r in records[:limit]]


def zsre_records(folder: Path | str | None = None, *, limit: int | None = None) -> list[QuestionRecord]:
    """The first ``limit`` records of ``zsre_mend_eval.json`` (MEND's schema) as questions, in file
    order (the case id is the index in the file, as the official loader numbers them).

    Raises:
        MissingDataError: the file is missing.
        ValueError: the file holds fewer than ``limit`` records, a record lacks a field of the
            schema, or its subject does not occur in its ``src``.
    """
    path = data_file("zsre", folder)
    records = _json(path)
    if not isinstance(records, list):
        raise ValueError(f"{path} must hold a JSON list of ZsRE records, got {type(records).__name__}.")
    if limit is not None and len(records) < limit:
        raise ValueError(f"{path} holds {len(records)} records but {limit} edits were asked for; ask for fewer.")
    for case_id, record in enumerate(records[:limit]):
        missing = [k for k in ("subject", "src", "rephrase", "answers", "loc", "loc_ans") if k not in record]
        if missing:
            raise ValueError(f"{path}, record {case_id}: no {missing} (MEND's ZsRE schema has subject, src, "
                             f"rephrase, answers, alt, loc, loc_ans; this record has {sorted(record)}).")
        if record["subject"] not in record["src"]:
            raise ValueError(f"{path}, record {case_id}: the subject {record['subject']!r} does not occur in "
                             f"src {record['src']!r}.")
    return questions_from_zsre(records[:limit])


def zsre_requests(folder: Path | str | None = None, *, limit: int | None = None) -> list[EditRequest]:
    """ZsRE records (MEND's schema) as edit requests, as the official loader builds them.

    The subject is located in ``src`` (``src.replace(subject, "{}")``); the new object is
    ``answers[0]``; the true object is unknown (the official code puts ``<|endoftext|>``);
    ``rephrase`` is the paraphrase; the neighbourhood prompt is ``loc + "?"`` (its answer
    ``loc_ans`` is scored token by token by the evaluation).
    """
    return [EditRequest(q.case_id, q.src.replace(q.subject, "{}", 1), q.subject, q.answer, "<|endoftext|>", "zsre",
                        paraphrase_prompts=(q.rephrase,), neighborhood_prompts=(q.loc + "?",))
            for q in zsre_records(folder, limit=limit)]


def attribute_snippets(folder: Path | str | None = None) -> dict[str, dict[str, list[str]]]:
    """``snippets[relation_id][target_id]`` = texts about subjects with that object (consistency)."""
    path = data_file("attribute_snippets", folder)
    snippets: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for entry in _json(path):
        try:
            texts = [sample["text"] for sample in entry["samples"]]
            snippets[entry["relation_id"]][entry["target_id"]].extend(texts)
        except (KeyError, TypeError) as err:
            raise ValueError(f"{path}: an entry lacks relation_id, target_id or samples[].text ({err}).") from err
    return {relation: dict(targets) for relation, targets in snippets.items()}


def tfidf_vectorizer(folder: Path | str | None = None) -> TfidfVectorizer:
    """A TF-IDF vectorizer with the official IDF statistics (``idf.npy``, ``tfidf_vocab.json``)."""
    idf = np.load(data_file("idf", folder), allow_pickle=False)
    vocabulary = _json(data_file("tfidf_vocab", folder))
    if len(vocabulary) != len(idf) or max(vocabulary.values(), default=-1) != len(idf) - 1:
        raise ValueError(f"idf.npy has {len(idf)} entries but tfidf_vocab.json maps {len(vocabulary)} words "
                         "(indices must be 0..n-1): the two files are not a pair.")
    vectorizer = TfidfVectorizer()
    vectorizer.vocabulary_ = vocabulary
    vectorizer.idf_ = idf
    return vectorizer
