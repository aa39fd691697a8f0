"""The paper's protocol end to end on tiny files in the official formats: load, C0 from a text
folder, two batches of MEMIT and of AlphaEdit, evaluation, JSON; on tiny GPT-2, GPT-J and Llama."""

import json

import numpy as np
import pytest
from editing_toy import toy_corpus, toy_records, toy_tokenizer
from test_editing_architectures import tiny

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


@pytest.mark.parametrize("family", ["gpt2", "gptj", "llama"])
def test_two_batches_of_memit_and_alphaedit_scored_into_json(family, tmp_path, monkeypatch):
    tokenizer = toy_tokenizer()
    model = tiny(family, tokenizer)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    write_data(tmp_path)
    monkeypatch.setenv("NULLSPACE_DATA_DIR", str(tmp_path))
    out = tmp_path / "results.json"
    argv = ["--model", str(tmp_path / "model"), "--hparams", "gpt2-xl", "--layers", "0", "1", "--edits", "4",
            "--batch", "2", "--every", "1", "--statistics-texts", "16", "--heldout-texts", "8",
            "--tokens-per-text", "32", "--generation-interval", "2", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(out)]
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
