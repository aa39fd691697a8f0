"""The paper's protocol end to end on tiny files in the official formats: load, C0 from a text
folder, two batches of MEMIT and of AlphaEdit, evaluation, JSON; on tiny GPT-2, GPT-J and Llama."""

import json

import numpy as np
import pytest
from editing_toy import toy_corpus, toy_records, toy_tokenizer
from test_editing_architectures import tiny

from nullspace.editing.evaluation.counterfact import fact_accuracy
from nullspace.editing.official_data import zsre_records
from nullspace.editing.run_paper_protocol import main


def write_data(folder):
    records = toy_records(4)
    for record in records:
        record["requested_rewrite"]["target_new"]["id"] = "Q" + record["requested_rewrite"]["target_new"]["str"]
    (folder / "counterfact.json").write_text(json.dumps(records))
    (folder / "attribute_snippets.json").write_text(json.dumps([
        {"relation_id": "city", "target_id": f"Q{city}", "samples": [{"text": f"Ida lives in {city} and likes tea."}]}
        for city in ("Paris", "Rome", "Oslo", "Lima")]))
    vocabulary = {"lives": 0, "in": 1, "tea": 2, "paris": 3, "rome": 4, "oslo": 5, "lima": 6, "likes": 7}
    np.save(folder / "idf.npy", np.linspace(1.0, 2.0, len(vocabulary)))
    (folder / "tfidf_vocab.json").write_text(json.dumps(vocabulary))
    (folder / "corpus").mkdir()
    for i, text in enumerate(toy_corpus()):
        (folder / "corpus" / f"{i:03d}.txt").write_text(text)


def save_tiny_model(family: str, folder) -> object:
    """A random model of ``family`` and the toy tokenizer saved in ``folder/model``; returns the tokenizer."""
    tokenizer = toy_tokenizer()
    model = tiny(family, tokenizer)
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return tokenizer


def protocol_argv(folder, *extra: str) -> list[str]:
    """The runner's arguments for 4 edits in batches of 2 on ``folder``'s model, writing ``folder/results.json``."""
    return ["--model", str(folder / "model"), "--hparams", "gpt2-xl", "--layers", "0", "1", "--edits", "4",
            "--batch", "2", "--every", "1", "--statistics-texts", "16", "--heldout-texts", "8",
            "--tokens-per-text", "32", "--cache-dir", str(folder / "cache"), "--out", str(folder / "results.json"),
            *extra]


@pytest.mark.parametrize("family", ["gpt2", "gptj", "llama"])
def test_two_batches_of_memit_and_alphaedit_scored_into_json(family, tmp_path, monkeypatch):
    save_tiny_model(family, tmp_path)
    write_data(tmp_path)
    monkeypatch.setenv("NULLSPACE_DATA_DIR", str(tmp_path))
    out = tmp_path / "results.json"
    argv = protocol_argv(tmp_path, "--generation-interval", "2")
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert results["edits"] == 4 and results["layers"] == [0, 1] and results["statistics_texts"] == 16
    assert results["context_templates"][0] == "{}" and len(results["context_templates"]) == 6  # official contexts
    assert results["methods"]["MEMIT"]["variant"] == "table1"  # Table 1's baseline: no cache of edited keys
    for method in ("MEMIT", "AlphaEdit"):
        run = results["methods"][method]
        assert run["history"]["edits"] == [0, 2, 4]
        for key in ("efficacy", "generalization", "specificity", "fluency", "consistency", "perplexity"):
            assert np.isfinite(run[key]), (method, key)
    with pytest.raises(SystemExit):  # an existing result is not overwritten
        main(argv)
    with pytest.raises(ValueError, match="holds 4 records but 10 edits were asked for"):
        main([*argv[:argv.index("--edits") + 1], "10", *argv[argv.index("--edits") + 2:], "--overwrite"])


def write_zsre(folder, count: int = 4) -> None:
    """A ZsRE file in MEND's schema (``loc`` without its question mark, as the official files)."""
    names, cities = ["Ava", "Bo", "Cy", "Di", "Ed"], ["Paris", "Rome", "Oslo", "Lima"]
    (folder / "zsre_mend_eval.json").write_text(json.dumps([
        {"subject": name, "src": f"Q: Where does {name} live? A:", "pred": cities[i % 4],
         "rephrase": f"The home town of {name} is", "alt": cities[(i + 2) % 4], "answers": [cities[(i + 1) % 4]],
         "loc": f"Where does {names[(i + 2) % 5]} live", "loc_ans": "the city of Rome",
         "cond": f"{cities[i % 4]} >> {cities[(i + 1) % 4]} || Q: Where does {name} live? A:"}
        for i, name in enumerate(names[:count])]))
    (folder / "corpus").mkdir()
    for i, text in enumerate(toy_corpus()):
        (folder / "corpus" / f"{i:03d}.txt").write_text(text)


@pytest.mark.parametrize("family", ["gpt2", "gptj", "llama"])
def test_zsre_two_batches_scored_as_the_official_zsre_evaluation(family, tmp_path, monkeypatch):
    tokenizer = save_tiny_model(family, tmp_path)
    write_zsre(tmp_path)
    monkeypatch.setenv("NULLSPACE_DATA_DIR", str(tmp_path))
    out = tmp_path / "results.json"
    argv = protocol_argv(tmp_path, "--dataset", "zsre")
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert results["dataset"] == "zsre" and results["edits"] == 4
    unedited = tiny(family, tokenizer)  # the same seed: the model before any edit
    questions = zsre_records(tmp_path, limit=4)
    probe_before = fact_accuracy(unedited, tokenizer, [q.loc + "?" for q in questions], [q.loc_ans for q in questions])
    for method in ("MEMIT", "AlphaEdit"):
        run = results["methods"][method]
        assert run["history"]["edits"] == [0, 2, 4]
        assert run["history"]["fact_accuracy"][0] == pytest.approx(probe_before)  # the probe: loc + "?" -> loc_ans
        assert all(change > 0 for change in run["weight_change"].values())
        assert "fluency" not in run and "consistency" not in run  # not part of ZsRE's evaluation
        # token-level accuracies, averaged per record then over the 4 records: one-token answers
        # score 0 or 100 per record, the 4-token loc_ans multiples of 25
        assert run["efficacy"] in (0.0, 25.0, 50.0, 75.0, 100.0) and run["generalization"] in (0, 25, 50, 75, 100)
        assert run["specificity"] * 16 / 100 == pytest.approx(round(run["specificity"] * 16 / 100))
    with pytest.raises(ValueError, match="holds 4 records but 6 edits were asked for"):
        main([*argv[:argv.index("--edits") + 1], "6", *argv[argv.index("--edits") + 2:], "--overwrite"])
