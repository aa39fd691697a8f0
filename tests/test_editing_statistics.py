"""Key statistics: the per-token mean E[kkᵀ], cached atomically and reused only when it matches."""

import numpy as np
import pytest
import torch
from editing_toy import toy_corpus, toy_model, toy_tokenizer

from nullspace.editing.statistics import StaleStatisticsError, collect_key_statistics, key_statistics


@pytest.fixture(scope="module")
def toy():
    tokenizer = toy_tokenizer()
    return toy_model(tokenizer), tokenizer


def test_statistics_equal_a_direct_mean_over_tokens(toy):
    model, tokenizer = toy
    texts = toy_corpus()[:5]
    stats = collect_key_statistics(model, tokenizer, [1], texts, batch_size=2)[1]
    rows = []
    handle = model.transformer.h[1].mlp.c_proj.register_forward_hook(
        lambda _m, inputs, _o: rows.append(inputs[0][0]))
    with torch.no_grad():
        for text in texts:  # one text at a time: no padding at all
            model(**tokenizer(text, return_tensors="pt"))
    handle.remove()
    keys = torch.cat(rows).double()
    assert stats.token_count == keys.shape[0]
    assert torch.allclose(stats.covariance, keys.T @ keys / keys.shape[0], rtol=1e-5, atol=1e-8)


def test_cache_is_reused_and_guarded(toy, tmp_path):
    model, tokenizer = toy
    texts = toy_corpus()
    first = key_statistics(model, tokenizer, "toy", [0, 2], texts, cache_dir=tmp_path)
    files = sorted(p.name for p in (tmp_path / "toy").iterdir())
    assert files == ["layer00_texts24.npz", "layer02_texts24.npz"]
    again = key_statistics(model, tokenizer, "toy", [0, 2], texts, cache_dir=tmp_path)
    assert torch.equal(first[2].moment_sum, again[2].moment_sum)
    # same size, different corpus: refused, not overwritten
    changed = [t.replace("tea", "the city") for t in texts]
    with pytest.raises(StaleStatisticsError, match="corpus_sha256"):
        key_statistics(model, tokenizer, "toy", [2], changed, cache_dir=tmp_path)
    # edited weights change the fingerprint of later layers only
    with torch.no_grad():
        model.transformer.h[1].mlp.c_proj.weight.add_(0.1)
    key_statistics(model, tokenizer, "toy", [0], texts, cache_dir=tmp_path)
    with pytest.raises(StaleStatisticsError, match="model_fingerprint"):
        key_statistics(model, tokenizer, "toy", [2], texts, cache_dir=tmp_path)
    fresh = key_statistics(model, tokenizer, "toy", [2], texts, cache_dir=tmp_path, recompute=True)
    assert not torch.equal(fresh[2].moment_sum, first[2].moment_sum)
    with torch.no_grad():
        model.transformer.h[1].mlp.c_proj.weight.sub_(0.1)


def test_corrupt_cache_is_detected(toy, tmp_path):
    model, tokenizer = toy
    texts = toy_corpus()
    key_statistics(model, tokenizer, "toy", [0], texts, cache_dir=tmp_path)
    path = tmp_path / "toy" / "layer00_texts24.npz"
    with np.load(path) as data:
        header, moment = data["header"], data["moment_sum"].copy()
    moment[0, 0] += 1.0
    np.savez(path, moment_sum=moment, header=header)
    with pytest.raises(StaleStatisticsError, match="corrupt"):
        key_statistics(model, tokenizer, "toy", [0], texts, cache_dir=tmp_path)
