"""The key statistics ``C0 = E[k kᵀ]`` of an FFN output matrix, collected over a corpus and cached.

MEMIT weighs its update by ``λ C0`` (AlphaEdit Eq. 15) and AlphaEdit builds its projector from
the eigenvectors of ``K0 K0ᵀ`` (Eq. 8–9), both estimated from the keys ``k`` (inputs of
``mlp.c_proj``) at every token of a text corpus: the per-token mean ``Σ k kᵀ / n`` (float64 here).

Collecting them is the slow step of both methods, so they are cached on disk, one ``.npz`` per
model, layer and number of texts, with a JSON header saying what they were computed from (model
name, a fingerprint of the model's weights, a hash of the corpus, token count) and a SHA-256 of
the arrays. A cached file is reused only when all of these match; a mismatch raises
:class:`StaleStatisticsError` instead of silently recomputing or overwriting. Files are written
atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nullspace.linalg import CovarianceAccumulator
from nullspace.paths import DATA_DIR
from nullspace.settings import progress

__all__ = [
    "DEFAULT_CACHE_DIR",
    "KeyStatistics",
    "StaleStatisticsError",
    "collect_key_statistics",
    "corpus_hash",
    "key_statistics",
    "model_fingerprint",
]

DEFAULT_CACHE_DIR = DATA_DIR / "cache" / "key_statistics"
FORMAT_VERSION = 1


class StaleStatisticsError(RuntimeError):
    """A cached statistics file exists but was computed from something else."""


@dataclass
class KeyStatistics:
    """``Σ k kᵀ`` and the token count at one layer; ``covariance`` is the per-token mean ``C0``."""

    layer: int
    moment_sum: torch.Tensor
    token_count: int
    text_count: int

    @property
    def covariance(self) -> torch.Tensor:
        """``C0 = E[k kᵀ]`` (float64, ``(d_ff, d_ff)``)."""
        return self.moment_sum / self.token_count


def _ffn_output(model: nn.Module, layer: int) -> nn.Module:
    blocks = model.transformer.h
    if not 0 <= layer < len(blocks):
        raise IndexError(f"layer {layer} does not exist: the model has blocks 0..{len(blocks) - 1}.")
    return blocks[layer].mlp.c_proj


def corpus_hash(texts: Sequence[str]) -> str:
    """SHA-256 of the corpus (texts joined by NUL), so a cache can tell corpora apart."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def model_fingerprint(model: nn.Module, up_to_layer: int, stride: int = 997) -> str:
    """A hash of the weights that determine the keys of ``up_to_layer``: embeddings and blocks
    ``0..up_to_layer`` (every ``stride``-th entry, so that GPT-2 XL hashes in a second)."""
    digest = hashlib.sha256()
    named = dict(model.named_parameters())
    for name in sorted(named):
        parts = name.split(".")
        if "h" in parts:
            block = int(parts[parts.index("h") + 1])
            if block > up_to_layer:
                continue
        elif not name.startswith("transformer.w"):
            continue
        values = named[name].detach().reshape(-1)[::stride].float().cpu().numpy()
        digest.update(name.encode() + np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


@torch.no_grad()
def collect_key_statistics(
    model: nn.Module,
    tokenizer,
    layers: Sequence[int],
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 128,
) -> dict[int, KeyStatistics]:
    """Accumulate ``Σ k kᵀ`` over every (non-padding) token of ``texts`` at each of ``layers``.

    One forward pass per batch serves every layer. Products are formed in the model's dtype on
    its device and summed in float64 on the CPU (the official code keeps a float32 mean).
    """
    if not texts:
        raise ValueError("the corpus is empty: pass at least one text.")
    device = next(model.parameters()).device
    modules = {layer: _ffn_output(model, layer) for layer in layers}
    dims = {layer: module.weight.shape[0] for layer, module in modules.items()}
    accumulators = {layer: CovarianceAccumulator(dims[layer]) for layer in layers}
    captured: dict[int, torch.Tensor] = {}
    handles = [module.register_forward_hook(
        lambda _m, inputs, _o, layer=layer: captured.__setitem__(layer, inputs[0].detach()))
        for layer, module in modules.items()]
    was_training = model.training
    model.eval()
    try:
        batches = range(0, len(texts), batch_size)
        for start in progress(batches, desc="key statistics", total=len(batches)):
            enc = tokenizer(list(texts[start:start + batch_size]), return_tensors="pt", padding=True,
                            truncation=True, max_length=max_length, add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items()}
            model(**enc)
            mask = enc["attention_mask"].bool()
            for layer in layers:
                rows = captured[layer][mask].float()
                accumulators[layer].sum += (rows.T @ rows).double().cpu()
                accumulators[layer].count += rows.shape[0]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {layer: KeyStatistics(layer, acc.sum, acc.count, len(texts)) for layer, acc in accumulators.items()}


def _cache_path(cache_dir: Path, model_name: str, layer: int, text_count: int) -> Path:
    safe = model_name.replace("/", "--")
    return Path(cache_dir) / safe / f"layer{layer:02d}_texts{text_count}.npz"


def _arrays_sha256(moment_sum: np.ndarray, token_count: int) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(moment_sum).tobytes())
    digest.update(str(token_count).encode())
    return digest.hexdigest()


def _save(path: Path, stats: KeyStatistics, header: dict) -> None:
    moment = stats.moment_sum.numpy()
    header = {**header, "token_count": stats.token_count, "sha256": _arrays_sha256(moment, stats.token_count)}
    buffer = io.BytesIO()
    np.savez(buffer, moment_sum=moment, header=np.array(json.dumps(header, sort_keys=True)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path, expected: dict) -> KeyStatistics:
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        moment = data["moment_sum"]
    if header.get("sha256") != _arrays_sha256(moment, header.get("token_count", -1)):
        raise StaleStatisticsError(f"{path} is corrupt (its checksum does not match its contents). "
                                   "Delete it and run again to recompute.")
    differing = {k: (header.get(k), v) for k, v in expected.items() if header.get(k) != v}
    if differing:
        what = "; ".join(f"{k}: cached {c!r}, now {n!r}" for k, (c, n) in differing.items())
        raise StaleStatisticsError(
            f"{path} was computed from something else ({what}). It is not overwritten silently: "
            "delete it, pass another cache_dir, or call key_statistics(..., recompute=True)."
        )
    return KeyStatistics(expected["layer"], torch.from_numpy(moment), int(header["token_count"]),
                         expected["text_count"])


def key_statistics(
    model: nn.Module,
    tokenizer,
    model_name: str,
    layers: Sequence[int],
    texts: Sequence[str],
    *,
    cache_dir: Path | str | None = DEFAULT_CACHE_DIR,
    recompute: bool = False,
    batch_size: int = 32,
    max_length: int = 128,
) -> dict[int, KeyStatistics]:
    """``C0`` statistics for ``layers``, loaded from the cache when they match, else computed.

    Args:
        model_name: names the cache folder (``course-gpt2``, ``gpt2-xl``, …).
        texts: the corpus; its hash and size are part of the cache key.
        cache_dir: where ``.npz`` files live (default ``data/cache/key_statistics``, git-ignored);
            None disables caching.
        recompute: compute afresh and replace a cached file that no longer matches.
    """
    results: dict[int, KeyStatistics] = {}
    missing: list[int] = []
    headers: dict[int, dict] = {}
    text_hash = corpus_hash(texts)
    for layer in layers:
        headers[layer] = {"format": FORMAT_VERSION, "model_name": model_name, "layer": layer,
                          "text_count": len(texts), "corpus_sha256": text_hash,
                          "model_fingerprint": model_fingerprint(model, layer), "max_length": max_length}
        path = _cache_path(cache_dir, model_name, layer, len(texts)) if cache_dir is not None else None
        if path is not None and path.exists() and not recompute:
            results[layer] = _load(path, headers[layer])
        else:
            missing.append(layer)
    if missing:
        computed = collect_key_statistics(model, tokenizer, missing, texts, batch_size=batch_size,
                                          max_length=max_length)
        for layer, stats in computed.items():
            if cache_dir is not None:
                _save(_cache_path(cache_dir, model_name, layer, len(texts)), stats, headers[layer])
            results[layer] = stats
    return {layer: results[layer] for layer in layers}
