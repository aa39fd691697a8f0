"""The sequential-editing experiment runner on a tiny random GPT-2."""

import pytest
import torch
from editing_toy import toy_corpus, toy_model, toy_records, toy_tokenizer
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.methods.memit import MemitEditor
from nullspace.editing.evaluation.experiment import GeneralAbilityProbe, harmonic_score, run_sequential_editing
from nullspace.editing.requests import requests_from_counterfact
from nullspace.editing.methods.sequential import subject_outputs
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
    result = run_sequential_editing(editor, tokenizer, requests, 2, probe, every=2, generation_requests=2,
                                    reference_texts={"Rome": ["Ava lives in Rome ."]}, vectorizer=vectorizer)
    assert result.history["edits"] == [0, 4, 6]
    assert len(result.history["perplexity"]) == 3
    assert editor.edits_done == 6 and len(editor.batch_seconds) == 3
    assert set(result.scores) >= {"efficacy", "generalization", "specificity", "fluency", "consistency",
                                  "fact_accuracy", "perplexity"}
    assert 0 <= harmonic_score(result.scores) <= 100
    editor.reset()


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
