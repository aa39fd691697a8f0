"""C0 sharded over two CPU processes (torchrun, gloo) equals C0 from one; corpus sources."""

import os
import subprocess
import sys

import pytest
import torch
from editing_toy import toy_corpus, toy_model, toy_tokenizer

from nullspace.editing.corpus import CorpusError, load_corpus, texts_from_dataset, texts_from_folder
from nullspace.editing.statistics import collect_key_statistics, key_statistics


def write_text_folder(folder, texts):
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f"{i:04d}.txt").write_text(text, encoding="utf-8")


def test_two_processes_give_the_same_c0_as_one(tmp_path):
    tokenizer = toy_tokenizer()
    model = toy_model(tokenizer)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    texts = toy_corpus()
    write_text_folder(tmp_path / "texts", texts)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NULLSPACE_PROGRESS": "0"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
         "nullspace.editing.collect_statistics", "--model", str(tmp_path / "model"), "--corpus",
         str(tmp_path / "texts"), "--layers", "0", "2", "--texts", str(len(texts)), "--tokens-per-text", "32",
         "--batch-size", "4", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "layer 2:" in run.stdout and "C0 spectrum" in run.stdout
    single = collect_key_statistics(model, tokenizer, [0, 2], texts, batch_size=4, max_length=32)
    sharded = key_statistics(model, tokenizer, str(tmp_path / "model"), [0, 2], texts,
                             cache_dir=tmp_path / "cache", max_length=32)  # loads what the two wrote
    for layer in (0, 2):
        assert sharded[layer].token_count == single[layer].token_count
        # each batch's Σ k kᵀ is formed in float32 (as on a GPU): other batches, other round-off
        scale = float(single[layer].moment_sum.abs().max())
        assert float((sharded[layer].moment_sum - single[layer].moment_sum).abs().max()) < 1e-6 * scale
    assert not list((tmp_path / "cache").rglob("*.tmp")) and not list((tmp_path / "cache").rglob("partial*"))


def test_text_folder_corpus(tmp_path):
    write_text_folder(tmp_path / "texts", ["first text", "  ", "second text", "third"])
    assert texts_from_folder(tmp_path / "texts") == ["first text", "second text", "third"]
    assert load_corpus(tmp_path / "texts", 2) == ["first text", "second text"]
    with pytest.raises(CorpusError, match="3 non-empty texts but 5"):
        texts_from_folder(tmp_path / "texts", 5)
    with pytest.raises(CorpusError, match="does not exist"):
        texts_from_folder(tmp_path / "absent")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValueError, match="a.txt is not UTF-8"):
        texts_from_folder(tmp_path / "bad")


def test_datasets_copy_corpus(tmp_path):
    datasets = pytest.importorskip("datasets")
    wikitext_like = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["", " = Title = \n", "", "An article .", "Another ."]}),
        "test": datasets.Dataset.from_dict({"text": ["held out"]}),
    })
    wikitext_like.save_to_disk(str(tmp_path / "wikitext"))
    assert load_corpus(tmp_path / "wikitext") == [" = Title = \n", "An article .", "Another ."]
    assert texts_from_dataset(tmp_path / "wikitext", split="test") == ["held out"]
    with pytest.raises(CorpusError, match="no split 'validation'"):
        texts_from_dataset(tmp_path / "wikitext", split="validation")
    with pytest.raises(KeyError, match="no column 'article'"):
        texts_from_dataset(tmp_path / "wikitext", column="article")
    datasets.Dataset.from_dict({"text": ["a", "b"]}).to_parquet(str(tmp_path / "parquet" / "part-0.parquet"))
    assert load_corpus(tmp_path / "parquet") == ["a", "b"]
    with pytest.raises(CorpusError, match="no dataset at"):
        texts_from_dataset(tmp_path / "nothing")
