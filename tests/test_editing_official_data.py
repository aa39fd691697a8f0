"""The papers' data files in their official formats, written tiny here, read through one setting."""

import json

import numpy as np
import pytest
from editing_toy import toy_records

from nullspace.editing.official_data import (
    MissingDataError,
    attribute_snippets,
    counterfact_requests,
    data_file,
    tfidf_vectorizer,
    zsre_requests,
)
from nullspace.editing.world.facts import WORLD_DIR

ZSRE = [{"subject": "Ava", "src": "Where does Ava live?", "pred": "Rome", "rephrase": "Ava lives in which city?",
         "alt": "Lima", "answers": ["Paris"], "loc": "nq question: who wrote the book", "loc_ans": "Jo",
         "cond": "Rome >> Paris || Where does Ava live?"}]


@pytest.fixture
def data(tmp_path, monkeypatch):
    (tmp_path / "counterfact.json").write_text(json.dumps(toy_records(4)))
    (tmp_path / "multi_counterfact.json").write_text(json.dumps(toy_records(6)))
    (tmp_path / "zsre_mend_eval.json").write_text(json.dumps(ZSRE))
    (tmp_path / "attribute_snippets.json").write_text(json.dumps([
        {"name": "Paris", "relation_id": "P19", "target_id": "Q90", "samples": [{"name": "x", "text": "born in Paris"}]},
        {"name": "Paris", "relation_id": "P19", "target_id": "Q90", "samples": [{"name": "y", "text": "a Parisian"}]}]))
    np.save(tmp_path / "idf.npy", np.array([1.0, 2.0, 1.5]))
    (tmp_path / "tfidf_vocab.json").write_text(json.dumps({"born": 0, "paris": 1, "city": 2}))
    monkeypatch.setenv("NULLSPACE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_counterfact_and_multi_counterfact(data):
    requests = counterfact_requests(limit=3)
    assert [r.subject for r in requests] == ["Ava", "Bo", "Cy"] and requests[0].target_new == "Rome"
    assert len(counterfact_requests(multi=True)) == 6
    with pytest.raises(ValueError, match="holds 4 records but 2000 edits were asked for"):
        counterfact_requests(limit=2000)


def test_zsre_follows_the_official_conversion(data):
    (request,) = zsre_requests()
    assert request.prompt == "Where does {} live?" and request.target_new == "Paris"  # answers[0]
    assert request.paraphrase_prompts == ("Ava lives in which city?",)
    assert request.neighborhood_prompts == ("nq question: who wrote the book?",)
    bad = dict(ZSRE[0], subject="Bo")
    (data / "zsre_mend_eval.json").write_text(json.dumps([bad]))
    with pytest.raises(ValueError, match="does not occur in src"):
        zsre_requests()


def test_snippets_and_idf(data):
    assert attribute_snippets()["P19"]["Q90"] == ["born in Paris", "a Parisian"]
    vector = tfidf_vectorizer().transform(["born in paris paris"]).toarray()[0]
    assert vector[1] > vector[0] > 0 and vector[2] == 0
    (data / "tfidf_vocab.json").write_text(json.dumps({"born": 0}))
    with pytest.raises(ValueError, match="not a pair"):
        tfidf_vectorizer()


def test_missing_files_are_named_with_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.delenv("NULLSPACE_DATA_DIR", raising=False)
    with pytest.raises(MissingDataError, match="set NULLSPACE_DATA_DIR"):
        counterfact_requests()
    monkeypatch.setenv("NULLSPACE_DATA_DIR", str(tmp_path))
    for kind, call in (("counterfact.json", counterfact_requests), ("zsre_mend_eval.json", zsre_requests),
                       ("attribute_snippets.json", attribute_snippets), ("idf.npy", tfidf_vectorizer)):
        with pytest.raises(MissingDataError, match=f"{kind} is not in the data folder.*put your copy of it at"):
            call()
    with pytest.raises(MissingDataError, match="corpus is not in the data folder"):
        data_file("corpus")


def test_the_course_world_files_use_the_same_counterfact_schema():
    requests = counterfact_requests(WORLD_DIR, limit=5)
    assert len(requests) == 5 and all("{}" in r.prompt for r in requests)
