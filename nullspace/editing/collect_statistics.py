"""Collect and cache ``C0`` for a model's edited layers, on one process or sharded over several.

    python -m nullspace.editing.collect_statistics --model gpt2-xl --corpus DIR --layers 13 14 15 16 17
    torchrun --nproc_per_node 4 -m nullspace.editing.collect_statistics --model gpt2-xl --corpus DIR ...

``--corpus`` is a folder of ``.txt`` files or a local ``datasets`` copy of Wikipedia/wikitext
(:mod:`nullspace.editing.corpus`); by default ``NULLSPACE_DATA_DIR``/corpus. Under ``torchrun``
each process reads every n-th text (gloo on CPUs, NCCL with one GPU per process) and the partial
moments are summed; process 0 writes the cache (``NULLSPACE_CACHE_DIR``) that the editors then
reuse. The defaults are the official ones: 100,000 texts of the model's context length.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from nullspace.editing.corpus import load_corpus
from nullspace.editing.models import load_model
from nullspace.editing.regime import spectrum_summary
from nullspace.editing.statistics import DEFAULT_CACHE_DIR, key_statistics
from nullspace.settings import data_dir


def _context_length(model) -> int:
    config = model.config
    return int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 1024))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="hub name in the local cache, or a save_pretrained folder")
    parser.add_argument("--corpus", type=Path, default=None, help="text folder or datasets copy "
                        "(default NULLSPACE_DATA_DIR/corpus)")
    parser.add_argument("--layers", type=int, nargs="+", required=True)
    parser.add_argument("--texts", type=int, default=100_000, help="number of texts (official: 100,000)")
    parser.add_argument("--tokens-per-text", type=int, default=None, help="default: the model's context length")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--checkpoint-every", type=int, default=50, help="batches between saved partial sums")
    args = parser.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = None
    if world > 1:
        use_cuda = torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            device = torch.device("cuda", torch.cuda.current_device())
        dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        corpus = args.corpus or (data_dir() / "corpus" if data_dir() else None)
        if corpus is None:
            parser.error("give --corpus, or set NULLSPACE_DATA_DIR to a folder with a corpus/ in it.")
        model, tokenizer = load_model(args.model, device=device)
        texts = load_corpus(corpus, args.texts)
        stats = key_statistics(model, tokenizer, args.model, args.layers, texts, cache_dir=args.cache_dir,
                               batch_size=args.batch_size,
                               max_length=args.tokens_per_text or _context_length(model),
                               checkpoint_every=args.checkpoint_every)
        if not dist.is_initialized() or dist.get_rank() == 0:
            for layer, s in stats.items():
                print(f"layer {layer}: {s.token_count} tokens from {s.text_count} texts; "
                      f"{spectrum_summary(s.covariance)}", flush=True)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
