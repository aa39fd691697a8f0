"""Key statistics on disk: a read-only cache folder, unreadable files, interrupted writes and runs."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from editing_toy import toy_corpus, toy_model, toy_tokenizer

from nullspace.editing import statistics
from nullspace.editing.statistics import (
    Checkpoint,
    CorruptStatisticsError,
    collect_key_statistics,
    key_statistics,
)
from nullspace.editing.statistics_files import remove_abandoned_tmp_files


@pytest.fixture(scope="module")
def toy():
    tokenizer = toy_tokenizer()
    return toy_model(tokenizer), tokenizer


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    home = tmp_path / "user-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "nullspace-course" / "key_statistics"


def test_cache_folder_setting(monkeypatch, tmp_path):
    from nullspace import settings

    monkeypatch.setenv("NULLSPACE_CACHE_DIR", str(tmp_path / "mine"))
    assert settings.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("NULLSPACE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.cache_dir() == settings.cache_dir().parent / "cache"  # data/ writable here
    # a read-only data/ (os.access says no, as it does for a non-root user)
    monkeypatch.setattr(settings.os, "access", lambda path, mode: False)
    assert settings.cache_dir() == tmp_path / "xdg" / "nullspace-course"


def test_read_only_cache_folder_keeps_the_result_in_the_user_cache(toy, tmp_path, user_cache, monkeypatch):
    model, tokenizer = toy
    texts = toy_corpus()
    readonly = tmp_path / "data-cache"
    real_write = statistics.write_npz_somewhere.__globals__["write_npz"]

    def refuse_readonly(path, arrays, header):  # as a read-only folder does, even for root
        if readonly in path.parents:
            raise PermissionError(13, "Permission denied", str(path))
        real_write(path, arrays, header)

    monkeypatch.setitem(statistics.write_npz_somewhere.__globals__, "write_npz", refuse_readonly)
    with pytest.warns(UserWarning, match="not writable.*saved to"):
        first = key_statistics(model, tokenizer, "toy", [1], texts, cache_dir=readonly)
    saved = user_cache / "toy" / "layer01_texts24.npz"
    assert saved.exists()
    # the next run finds it there instead of recomputing
    monkeypatch.setattr(statistics, "collect_key_statistics", lambda *a, **k: pytest.fail("recomputed"))
    again = key_statistics(model, tokenizer, "toy", [1], texts, cache_dir=readonly)
    assert torch.equal(first[1].moment_sum, again[1].moment_sum)


def test_nowhere_to_write_still_returns_the_result(toy, tmp_path, user_cache, monkeypatch):
    model, tokenizer = toy

    def refuse(path, arrays, header):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setitem(statistics.write_npz_somewhere.__globals__, "write_npz", refuse)
    with pytest.warns(UserWarning, match="could not be cached"):
        stats = key_statistics(model, tokenizer, "toy", [0], toy_corpus(), cache_dir=tmp_path / "c")
    assert stats[0].token_count > 0


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_unreadable_statistics_file_names_the_file_and_the_fix(toy, tmp_path, damage):
    model, tokenizer = toy
    texts = toy_corpus()
    key_statistics(model, tokenizer, "toy", [0], texts, cache_dir=tmp_path)
    path = tmp_path / "toy" / "layer00_texts24.npz"
    content = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": content[: len(content) // 2],
                      "garbage": b"not a statistics file" * 10}[damage])
    with pytest.raises(CorruptStatisticsError) as caught:
        key_statistics(model, tokenizer, "toy", [0], texts, cache_dir=tmp_path)
    message = str(caught.value)
    assert str(path) in message and "Delete it" in message and "recompute=True" in message
    fresh = key_statistics(model, tokenizer, "toy", [0], texts, cache_dir=tmp_path, recompute=True)
    assert fresh[0].token_count > 0
    assert key_statistics(model, tokenizer, "toy", [0], texts, cache_dir=tmp_path)[0].token_count == fresh[0].token_count


def test_interrupted_write_leaves_no_tmp_file_behind(toy, tmp_path):
    model, tokenizer = toy
    folder = tmp_path / "toy"
    folder.mkdir()
    # a writer killed mid-write: its process is gone, its .tmp is not
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    abandoned = folder / f"layer00_texts24.npz.{dead.stdout.strip()}.tmp"
    abandoned.write_bytes(b"half a file")
    older_style = folder / "layer02_texts24.npzab12cd.tmp"
    older_style.write_bytes(b"half a file")
    live = folder / f"layer01_texts24.npz.{os.getppid()}.tmp"  # a live writer's file is left alone
    live.write_bytes(b"being written")
    key_statistics(model, tokenizer, "toy", [0], toy_corpus(), cache_dir=tmp_path)
    assert not abandoned.exists() and not older_style.exists() and live.exists()
    assert (folder / "layer00_texts24.npz").exists()
    assert remove_abandoned_tmp_files(tmp_path / "absent") == []


def test_interrupted_run_resumes_from_its_partial_sums(toy, tmp_path, monkeypatch):
    model, tokenizer = toy
    texts = toy_corpus()
    whole = collect_key_statistics(model, tokenizer, [0, 2], texts, batch_size=4)
    calls = {"n": 0}
    real_forward = model.forward

    def dies_after_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_forward(*args, **kwargs)

    checkpoint = Checkpoint(tmp_path / "partial.npz", {"what": "toy"}, every=1)
    monkeypatch.setattr(model, "forward", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        collect_key_statistics(model, tokenizer, [0, 2], texts, batch_size=4, checkpoint=checkpoint)
    assert checkpoint.path.exists()
    calls["n"] = -100
    resumed = collect_key_statistics(model, tokenizer, [0, 2], texts, batch_size=4, checkpoint=checkpoint)
    assert calls["n"] == -100 + 3  # 6 batches in all, 3 done before the interruption
    assert not checkpoint.path.exists()
    for layer in (0, 2):
        assert resumed[layer].token_count == whole[layer].token_count
        assert torch.allclose(resumed[layer].moment_sum, whole[layer].moment_sum, rtol=1e-12, atol=1e-12)
    # a checkpoint of other settings is not resumed
    monkeypatch.setattr(model, "forward", real_forward)
    np.savez(checkpoint.path, junk=np.zeros(1))
    again = collect_key_statistics(model, tokenizer, [0, 2], texts, batch_size=4, checkpoint=checkpoint)
    assert torch.allclose(again[2].moment_sum, whole[2].moment_sum, rtol=1e-12, atol=1e-12)


def test_statistics_show_a_progress_bar_with_time_left(toy, monkeypatch, capsys):
    model, tokenizer = toy
    monkeypatch.setenv("NULLSPACE_PROGRESS", "1")
    collect_key_statistics(model, tokenizer, [0], toy_corpus(), batch_size=4)
    err = capsys.readouterr().err
    assert "key statistics" in err and "6/6" in err and "<" in err  # tqdm: elapsed<remaining
