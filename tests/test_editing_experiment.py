"""The sequential-editing experiment runner on a tiny random GPT-2."""

import json

import pytest
import torch
from editing_toy import toy_corpus, toy_model, toy_records, toy_tokenizer
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.evaluation.counterfact import zsre_scores
from nullspace.editing.evaluation.experiment import (
    CounterFactEvaluation,
    GeneralAbilityProbe,
    ZsreEvaluation,
    harmonic_score,
    run_sequential_editing,
)
from nullspace.editing.methods.memit import MemitEditor
from nullspace.editing.methods.sequential import subject_outputs
from nullspace.editing.requests import questions_from_zsre, requests_from_counterfact
from nullspace.editing.statistics import collect_key_statistics


def shifted_targets(model, tokenizer, requests, layer):
    now = subject_outputs(model, tokenizer, layer, requests)
    return now + 0.3 * torch.randn(now.shape, generator=torch.Generator().manual_seed(0))


def test_run_records_history_and_scores_and_resets_first():
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    requests = requests_from_counterfact(toy_records(6))
    c0 = {l: s.covariance for l, s in collect_key_statistics(model, tokenizer, [0, 1], toy_corpus()).items()}
    editor = MemitEditor(model, tokenizer, (0, 1), shifted_targets, key_covariances=c0, covariance_weight=10.0)
    probe = GeneralAbilityProbe(["Ava lives in", "Bo lives in"], ["Paris", "Rome"], toy_corpus()[:4])
    editor.edit(requests[:2])  # an earlier experiment: the runner must start from the unedited model
    vectorizer = TfidfVectorizer().fit(toy_corpus())
    evaluation = CounterFactEvaluation(3, {"Rome": ["Ava lives in Rome ."]}, vectorizer, max_length=16)
    result = run_sequential_editing(editor, tokenizer, requests, 2, probe, every=2, evaluation=evaluation,
                                    variant="table1")
    assert result.history["edits"] == [0, 4, 6]
    assert len(result.history["perplexity"]) == 3
    assert set(result.history["weight_change"]) == {"0", "1"}
    assert result.history["weight_change"]["1"][0] == 0.0 < result.history["weight_change"]["1"][-1]
    assert editor.edits_done == 6 and len(editor.batch_seconds) == 3
    assert set(result.scores) >= {"efficacy", "generalization", "specificity", "fluency", "consistency",
                                  "fact_accuracy", "perplexity"}
    assert 0 <= harmonic_score(result.scores) <= 100
    row = json.loads(json.dumps(result.as_dict()))  # JSON-ready
    assert row["method"] == "MEMIT" and row["variant"] == "table1" and row["edits"] == 6 and row["batch"] == 2
    assert row["weight_change"] == {str(k): v for k, v in editor.weight_change().items()}
    editor.reset()


def test_run_refuses_more_edits_than_requests_and_repeated_requests():
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    requests = requests_from_counterfact(toy_records(4))
    c0 = {l: s.covariance for l, s in collect_key_statistics(model, tokenizer, [1], toy_corpus()).items()}
    editor = MemitEditor(model, tokenizer, (1,), shifted_targets, key_covariances=c0, covariance_weight=10.0)
    probe = GeneralAbilityProbe(["Ava lives in"], ["Paris"], toy_corpus()[:2])
    with pytest.raises(ValueError, match="asked for 5 edits but only 4 requests"):
        run_sequential_editing(editor, tokenizer, requests, 2, probe, edits=5)
    with pytest.raises(ValueError, match="case_id"):
        run_sequential_editing(editor, tokenizer, requests[:2] + requests[:1], 2, probe)
    assert editor.edits_done == 0


def test_zsre_evaluation_scores_the_records_of_the_edited_requests():
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    records = questions_from_zsre([{"subject": n, "src": f"Q: Where does {n} live? A:", "pred": "Paris",
                                    "rephrase": f"The home town of {n} is", "alt": "Rome", "answers": ["Rome"],
                                    "loc": "nq question: Where does Lu live", "loc_ans": "Oslo"}
                                   for n in ("Ava", "Bo", "Cy")])
    requests = [r.as_edit_request() for r in records]
    evaluation = ZsreEvaluation(records)
    assert evaluation(model, tokenizer, requests[:2]) == zsre_scores(model, tokenizer, records[:2])
    with pytest.raises(ValueError, match="no ZsRE record"):
        ZsreEvaluation(records[:1])(model, tokenizer, requests[1:])


def test_harmonic_score():
    assert harmonic_score({"efficacy": 50, "generalization": 50, "specificity": 50}) == pytest.approx(50)
    assert harmonic_score({"efficacy": 100, "generalization": 0, "specificity": 100}) == 0.0


def test_probe_reports_facts_left_out_of_k0_separately():
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    listed_only = GeneralAbilityProbe(["Ava lives in"], ["Paris"], toy_corpus()[:2])
    assert "unlisted_fact_accuracy" not in listed_only.measure(model, tokenizer)
    both = GeneralAbilityProbe(["Ava lives in"], ["Paris"], toy_corpus()[:2], ["Bo lives in"], ["Rome"])
    scores = both.measure(model, tokenizer)
    assert set(scores) == {"fact_accuracy", "perplexity", "unlisted_fact_accuracy"}
    assert scores["unlisted_fact_accuracy"] in (0.0, 100.0)
