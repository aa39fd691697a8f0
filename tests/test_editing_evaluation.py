"""CounterFact/ZsRE scores, fluency and consistency on hand-checkable cases."""

import math

import pytest
import torch
from editing_toy import toy_model, toy_records, toy_tokenizer
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.evaluation.counterfact import (
    consistency,
    counterfact_scores,
    fact_accuracy,
    fluency,
    ngram_entropy,
    perplexity,
    target_scores,
    zsre_scores,
)
from nullspace.editing.requests import QuestionRecord, requests_from_counterfact


@pytest.fixture(scope="module")
def toy():
    tokenizer = toy_tokenizer()
    return toy_model(tokenizer), tokenizer


def test_target_nll_matches_a_manual_log_softmax(toy):
    model, tokenizer = toy
    nll, top1 = target_scores(model, tokenizer, ["Ava lives in", "The home town of Bo is"], ["Paris", "Rome"])
    ids = tokenizer("Ava lives in Paris", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -2]
    expected = -torch.log_softmax(logits, -1)[ids[0, -1]]
    assert float(nll[0]) == pytest.approx(float(expected), rel=1e-5)
    assert bool(top1[0]) == (int(logits.argmax()) == int(ids[0, -1]))


def test_counterfact_scores_are_complementary_for_efficacy_and_specificity(toy):
    model, tokenizer = toy
    requests = requests_from_counterfact(toy_records(4))
    scores = counterfact_scores(model, tokenizer, requests)
    for value in scores.as_dict().values():
        assert 0.0 <= value <= 100.0
    # flipping new and true objects turns efficacy into 100 − efficacy (ties have probability 0)
    flipped = [type(r)(r.case_id, r.prompt, r.subject, r.target_true, r.target_new, r.relation_id)
               for r in requests]
    assert counterfact_scores(model, tokenizer, flipped).efficacy == pytest.approx(100 - scores.efficacy)


def test_zsre_token_accuracy_in_range(toy):
    model, tokenizer = toy
    record = QuestionRecord(0, "Ava", "Q: Where does Ava live? A:", "The home town of Ava is", "Rome", "Paris",
                            "Bo lives in", "Oslo")
    scores = zsre_scores(model, tokenizer, [record])
    assert set(scores) == {"efficacy", "generalization", "specificity"}
    assert all(v in (0.0, 100.0) for v in scores.values())  # one-token answers: right or wrong


def test_ngram_entropy_and_fluency():
    assert ngram_entropy(list("aaaa"), 2) == 0.0
    assert ngram_entropy(["a", "b", "c", "d", "e"], 2) == pytest.approx(2.0)  # 4 distinct bigrams
    repetitive, varied = "Ava lives in Paris . " * 6, "Ava lives in Paris and works as a chef who likes tea ."
    assert fluency([repetitive]) < fluency([varied])
    # (2/3 H2 + 4/3 H3)/2 on 5 distinct words: H2 = 2, H3 = log2 3
    assert fluency(["a b c d e"]) == pytest.approx(100 * (2 / 3 * 2 + 4 / 3 * math.log2(3)) / 2)


def test_consistency_is_a_tfidf_cosine():
    corpus = ["Ava lives in Paris", "Bo lives in Rome", "Cy works as a chef"]
    vectorizer = TfidfVectorizer().fit(corpus)
    assert consistency(["Ava lives in Paris"], ["Ava lives in Paris"], vectorizer) == pytest.approx(100.0)
    assert consistency(["chef"], ["Paris"], vectorizer) == 0.0


def test_fact_accuracy_and_perplexity(toy):
    model, tokenizer = toy
    accuracy = fact_accuracy(model, tokenizer, ["Ava lives in"], ["Paris"])
    assert accuracy in (0.0, 100.0)
    ppl = perplexity(model, tokenizer, ["Ava lives in Paris .", "Bo works as a chef ."])
    assert 1.0 < ppl < 10 * len(tokenizer)
