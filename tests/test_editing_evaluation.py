"""CounterFact/ZsRE scores, fluency and consistency on hand-checkable cases."""

import math

import pytest
import torch
from editing_toy import toy_model, toy_records, toy_tokenizer
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.evaluation.counterfact import (
    COURSE_LOC_SUFFIX,
    OFFICIAL_GENERATION_LENGTH,
    OFFICIAL_LOC_SUFFIX,
    consistency,
    counterfact_scores,
    fact_accuracy,
    fluency,
    generate,
    ngram_entropy,
    perplexity,
    target_scores,
    zsre_scores,
)
from nullspace.editing.requests import questions_from_zsre, requests_from_counterfact


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


MEND_RECORD = {"subject": "Ava", "src": "Q: Where does Ava live? A:", "pred": "Paris",
               "rephrase": "The home town of Ava is", "alt": "Rome", "answers": ["Rome"],
               "loc": "nq question: Where does Bo live", "loc_ans": "Oslo", "cond": "Paris >> Rome || …"}


def test_zsre_record_reads_mends_schema_as_the_official_loader():
    (record,) = questions_from_zsre([MEND_RECORD])
    assert record.case_id == 0 and record.answer == "Rome" and record.pred == "Paris"
    request = record.as_edit_request()
    assert request.prompt == "Q: Where does {} live? A:" and request.target_new == "Rome"
    assert request.target_true == "Paris"
    without_pred = questions_from_zsre([{k: v for k, v in MEND_RECORD.items() if k != "pred"}])[0]
    assert without_pred.as_edit_request().target_true == "<|endoftext|>"  # as the official loader
    with pytest.raises(ValueError, match="answers"):
        questions_from_zsre([{**MEND_RECORD, "answers": "Rome"}])
    with pytest.raises(KeyError, match="loc_ans"):
        questions_from_zsre([{k: v for k, v in MEND_RECORD.items() if k != "loc_ans"}])


def test_zsre_token_accuracy_and_the_locality_suffix(toy):
    model, tokenizer = toy
    (record,) = questions_from_zsre([MEND_RECORD])
    scores = zsre_scores(model, tokenizer, [record])
    assert set(scores) == {"efficacy", "generalization", "specificity"}
    assert all(v in (0.0, 100.0) for v in scores.values())  # one-token answers: right or wrong
    # the official suffix "?" and the course's "? A:" score the same answer after different prompts
    # ("nq question:" holds words the toy tokenizer does not know: read as <|unk|>, as the official code would)
    for suffix in (OFFICIAL_LOC_SUFFIX, COURSE_LOC_SUFFIX):
        ids = tokenizer(record.loc + suffix, add_special_tokens=False)["input_ids"]
        (answer,) = tokenizer(" " + record.loc_ans, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            predicted = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        expected = 100.0 if predicted == answer else 0.0
        assert zsre_scores(model, tokenizer, [record], loc_suffix=suffix)["specificity"] == expected


def test_generation_is_seeded_batched_and_as_long_as_the_official_runner(toy):
    model, tokenizer = toy
    prompts = ["Ava lives in", "Bo works as a", "Ava lives in"]
    texts = generate(model, tokenizer, prompts, max_length=12, seed=3, skip_special_tokens=False)
    assert texts == generate(model, tokenizer, prompts, max_length=12, seed=3, skip_special_tokens=False)
    assert [len(tokenizer(t)["input_ids"]) for t in texts] == [12, 12, 12]  # prompt included, as max_out_len
    assert all(t.startswith(p) for t, p in zip(texts, prompts))
    # the toy model has 32 positions
    capped = generate(model, tokenizer, prompts[:1], max_length=100, skip_special_tokens=False)
    assert len(tokenizer(capped[0])["input_ids"]) == model.config.n_positions
    assert OFFICIAL_GENERATION_LENGTH == 100


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


def test_zsre_scores_do_not_depend_on_the_batch_size(toy):
    model, tokenizer = toy
    names, cities = ["Ava", "Bo", "Cy", "Di", "Ed"], ["Paris", "Rome", "Oslo", "Lima", "Paris city"]
    records = questions_from_zsre([{**MEND_RECORD, "subject": n, "src": f"Q: Where does {n} live? A:",
                                    "rephrase": f"The home town of {n} is", "answers": [c]}
                                   for n, c in zip(names, cities)])
    whole = zsre_scores(model, tokenizer, records, batch_size=64)
    assert zsre_scores(model, tokenizer, records, batch_size=2) == pytest.approx(whole, abs=1e-9)
    with pytest.raises(ValueError, match="batch_size"):
        zsre_scores(model, tokenizer, records, batch_size=0)
