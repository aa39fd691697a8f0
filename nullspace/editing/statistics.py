"""The key statistics ``C0 = E[k kᵀ]`` of an FFN output matrix, collected over a corpus and cached.

MEMIT weighs its update by ``λ C0`` (AlphaEdit Eq. 15) and AlphaEdit builds its projector from
the eigenvectors of ``K0 K0ᵀ`` (Eq. 8–9), both estimated from the keys ``k`` (inputs of the edited
matrix, :mod:`nullspace.editing.architectures`) at every token of a text corpus: the per-token
mean ``Σ k kᵀ / n`` (summed in float64 here; the official code keeps a float32 mean).

As the official code does (``layer_stats``), a configured number of texts is read, each truncated
to a configured number of tokens, in batches; one forward pass serves every layer. Collecting them
is the slow step of both methods (hours for GPT-2 XL on 100,000 Wikipedia articles), so:

* a progress bar shows the batches done and the time left (``NULLSPACE_PROGRESS``);
* the partial sums are saved atomically every ``checkpoint_every`` batches, and a run that was
  interrupted resumes where it stopped (same model, layers, corpus and settings);
* the result is cached, one ``.npz`` per model, layer and number of texts, with a header saying
  what it was computed from (model name, a fingerprint of the weights, a hash of the corpus,
  tokens per text) and a checksum; a cached file is reused only when all of these match, and a
  mismatch raises :class:`StaleStatisticsError` instead of silently recomputing or overwriting;
* the cache folder is ``NULLSPACE_CACHE_DIR`` (default ``data/cache`` when writable, else the
  user's cache folder); a folder that turns out read-only sends the file to the user's cache
  folder with a warning, so a computed result is never lost (:mod:`.statistics_files`);
* under ``torch.distributed`` (launched with ``torchrun``; gloo on CPUs, NCCL on GPUs) each
  process reads every ``world_size``-th text and the partial moments are summed across processes
  (``python -m nullspace.editing.collect_statistics``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from nullspace.capture import input_dim
from nullspace.editing.architectures import architecture_of, ffn_output
from nullspace.editing.statistics_files import (
    CorruptStatisticsError,
    StaleStatisticsError,
    fallback_folder,
    read_npz,
    remove_abandoned_tmp_files,
    write_npz,
    write_npz_somewhere,
)
from nullspace.settings import cache_dir as settings_cache_dir
from nullspace.settings import progress

__all__ = [
    "DEFAULT_CACHE_DIR",
    "CorruptStatisticsError",
    "KeyStatistics",
    "StaleStatisticsError",
    "collect_key_statistics",
    "corpus_hash",
    "key_statistics",
    "model_fingerprint",
]

DEFAULT_CACHE_DIR = settings_cache_dir() / "key_statistics"
FORMAT_VERSION = 1


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


def corpus_hash(texts: Sequence[str]) -> str:
    """SHA-256 of the corpus (texts joined by NUL), so a cache can tell corpora apart."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()


def model_fingerprint(model: nn.Module, up_to_layer: int, stride: int = 997) -> str:
    """A hash of the weights that determine the keys of ``up_to_layer``: the embeddings and blocks
    ``0..up_to_layer`` (every ``stride``-th entry, so that GPT-2 XL hashes in a second)."""
    arch = architecture_of(model)
    block_prefix = arch.blocks + "."
    after_blocks = (arch.final_norm + ".", "lm_head.")
    digest = hashlib.sha256()
    named = dict(model.named_parameters())
    for name in sorted(named):
        if name.startswith(block_prefix):
            if int(name[len(block_prefix):].split(".", 1)[0]) > up_to_layer:
                continue
        elif name.startswith(after_blocks):
            continue
        values = named[name].detach().reshape(-1)[::stride].float().cpu().numpy()
        digest.update(name.encode() + np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """Where and how often :func:`collect_key_statistics` saves its partial sums.

    ``header`` says what the sums are computed from; a checkpoint whose header differs is not
    resumed (it is replaced).
    """

    path: Path
    header: dict
    every: int = 50


def _distributed() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _load_checkpoint(checkpoint: Checkpoint | None, layers: Sequence[int]):
    if checkpoint is None or not checkpoint.path.exists():
        return None
    try:
        arrays, header = read_npz(checkpoint.path)
    except CorruptStatisticsError:
        return None  # a partial sum is only a shortcut: start again
    if {k: header.get(k) for k in checkpoint.header} != checkpoint.header:
        return None
    if any(f"moment_sum_{layer}" not in arrays for layer in layers):
        return None
    return header, {layer: torch.from_numpy(arrays[f"moment_sum_{layer}"]) for layer in layers}


def _save_checkpoint(checkpoint: Checkpoint, sums: dict[int, torch.Tensor], texts_done: int, tokens: int) -> None:
    arrays = {f"moment_sum_{layer}": s.cpu().numpy() for layer, s in sums.items()}
    try:
        write_npz(checkpoint.path, arrays, {**checkpoint.header, "texts_done": texts_done, "token_count": tokens})
    except OSError:
        pass  # no place for the partial sums: the run goes on, it just cannot resume


@torch.no_grad()
def collect_key_statistics(
    model: nn.Module,
    tokenizer,
    layers: Sequence[int],
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    checkpoint: Checkpoint | None = None,
) -> dict[int, KeyStatistics]:
    """Accumulate ``Σ k kᵀ`` over every (non-padding) token of ``texts`` at each of ``layers``.

    Args:
        texts: the corpus; under ``torch.distributed`` each process reads every
            ``world_size``-th text and the sums are added across processes.
        batch_size: texts per forward pass.
        max_length: tokens per text (longer texts are truncated; the official code uses the
            model's context length).
        checkpoint: save the partial sums there every ``checkpoint.every`` batches and resume
            from them (removed when done).

    Returns:
        ``{layer: KeyStatistics}``, on every process. Products are formed in float32 on the
        model's device and summed in float64.
    """
    if not texts:
        raise ValueError("the corpus is empty: pass at least one text.")
    if batch_size < 1 or max_length < 1:
        raise ValueError(f"batch_size and max_length must be positive, got {batch_size} and {max_length}.")
    rank, world = _distributed()
    share = list(texts[rank::world])
    device = next(model.parameters()).device
    modules = {layer: ffn_output(model, layer) for layer in layers}
    dims = {layer: input_dim(module) for layer, module in modules.items()}
    sums = {layer: torch.zeros(dims[layer], dims[layer], dtype=torch.float64, device=device) for layer in layers}
    tokens, texts_done = 0, 0
    resumed = _load_checkpoint(checkpoint, layers)
    if resumed is not None:
        header, partial = resumed
        texts_done, tokens = int(header["texts_done"]), int(header["token_count"])
        for layer in layers:
            sums[layer] += partial[layer].to(device)
    captured: dict[int, torch.Tensor] = {}
    handles = [module.register_forward_hook(
        lambda _m, inputs, _o, layer=layer: captured.__setitem__(layer, inputs[0].detach()))
        for layer, module in modules.items()]
    was_training = model.training
    model.eval()
    try:
        starts = range(texts_done, len(share), batch_size)
        for index, start in enumerate(progress(starts, desc="key statistics", total=len(starts), unit="batch"), 1):
            enc = tokenizer(share[start:start + batch_size], return_tensors="pt", padding=True,
                            truncation=True, max_length=max_length)
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            model(**enc)
            mask = enc["attention_mask"].bool()
            for layer in layers:
                rows = captured[layer][mask].float()
                sums[layer] += (rows.T @ rows).double()
            tokens += int(mask.sum())
            texts_done = min(start + batch_size, len(share))
            if checkpoint is not None and index % checkpoint.every == 0 and texts_done < len(share):
                _save_checkpoint(checkpoint, sums, texts_done, tokens)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if world > 1:
        backend_device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        total = torch.tensor([tokens], dtype=torch.float64, device=backend_device)
        dist.all_reduce(total)
        tokens = int(total.item())
        for layer in layers:
            reduced = sums[layer].to(backend_device)
            dist.all_reduce(reduced)
            sums[layer] = reduced
    if checkpoint is not None:
        checkpoint.path.unlink(missing_ok=True)
    return {layer: KeyStatistics(layer, sums[layer].cpu(), tokens, len(texts)) for layer in layers}


def _cache_path(cache_dir: Path, model_name: str, layer: int, text_count: int) -> Path:
    safe = model_name.replace("/", "--")
    return Path(cache_dir) / safe / f"layer{layer:02d}_texts{text_count}.npz"


def _load(path: Path, expected: dict) -> KeyStatistics:
    arrays, header = read_npz(path)
    differing = {k: (header.get(k), v) for k, v in expected.items() if header.get(k) != v}
    if differing:
        what = "; ".join(f"{k}: cached {c!r}, now {n!r}" for k, (c, n) in differing.items())
        raise StaleStatisticsError(
            f"{path} was computed from something else ({what}). It is not overwritten silently: "
            "delete it, pass another cache_dir, or call key_statistics(..., recompute=True)."
        )
    return KeyStatistics(expected["layer"], torch.from_numpy(arrays["moment_sum"]), int(header["token_count"]),
                         expected["text_count"])


def _cached_file(cache_dir: Path, model_name: str, layer: int, text_count: int) -> Path | None:
    path = _cache_path(cache_dir, model_name, layer, text_count)
    if path.exists():
        return path
    elsewhere = fallback_folder(path.parent, cache_dir) / path.name
    return elsewhere if elsewhere.exists() else None


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
    checkpoint_every: int = 50,
) -> dict[int, KeyStatistics]:
    """``C0`` statistics for ``layers``, loaded from the cache when they match, else computed.

    Args:
        model_name: names the cache folder (``course-gpt2``, ``gpt2-xl``, …).
        texts: the corpus; its hash and size are part of the cache key.
        cache_dir: where ``.npz`` files live (default ``NULLSPACE_CACHE_DIR``/key_statistics, see
            :mod:`nullspace.settings`); None disables caching (and resuming).
        recompute: compute afresh and replace a cached file that no longer matches or is corrupt.
        max_length: tokens per text (part of the cache key).
        checkpoint_every: batches between saves of the partial sums (resumable runs).

    Raises:
        StaleStatisticsError: a cached file was computed from another model, corpus or setting.
        CorruptStatisticsError: a cached file is empty, truncated or corrupted (the message says
            which, and what to do).
    """
    text_hash = corpus_hash(texts)
    headers: dict[int, dict] = {}
    results: dict[int, KeyStatistics] = {}
    missing: list[int] = []
    cache_root = Path(cache_dir).expanduser() if cache_dir is not None else None
    for layer in layers:
        headers[layer] = {"format": FORMAT_VERSION, "model_name": model_name, "layer": layer,
                          "text_count": len(texts), "corpus_sha256": text_hash,
                          "model_fingerprint": model_fingerprint(model, layer), "max_length": max_length}
        path = _cached_file(cache_root, model_name, layer, len(texts)) if cache_root is not None else None
        if path is not None and not recompute:
            results[layer] = _load(path, headers[layer])
        else:
            missing.append(layer)
    if missing:
        rank, world = _distributed()
        checkpoint = None
        if cache_root is not None:
            folder = _cache_path(cache_root, model_name, missing[0], len(texts)).parent
            remove_abandoned_tmp_files(folder)
            name = f"partial_layers{'-'.join(map(str, missing))}_texts{len(texts)}_rank{rank}of{world}.npz"
            checkpoint = Checkpoint(folder / name, {
                "format": FORMAT_VERSION, "model_name": model_name, "layers": list(missing),
                "text_count": len(texts), "corpus_sha256": text_hash, "max_length": max_length,
                "batch_size": batch_size, "rank": rank, "world_size": world,
                "model_fingerprint": model_fingerprint(model, max(missing))}, checkpoint_every)
        computed = collect_key_statistics(model, tokenizer, missing, texts, batch_size=batch_size,
                                          max_length=max_length, checkpoint=checkpoint)
        for layer, stats in computed.items():
            if cache_root is not None and rank == 0:
                arrays = {"moment_sum": stats.moment_sum.numpy()}
                write_npz_somewhere(_cache_path(cache_root, model_name, layer, len(texts)), arrays,
                                    {**headers[layer], "token_count": stats.token_count}, cache_root)
            results[layer] = stats
        if world > 1:
            dist.barrier()
    return {layer: results[layer] for layer in layers}
