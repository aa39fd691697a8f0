"""One full AlphaEdit batch at GPT-2 XL's width, on a randomly initialised model.

No GPT-2 XL weights can be downloaded here, so this proves the path at full width instead:
a GPT-2 with XL's widths (n_embd 1600, 25 heads, d_ff 6400) and blocks 0–17, enough to hold the
official edited layers 13–17 (the real model has 48 blocks; the loss is read at this model's
output), runs statistics (on a small random-word corpus), the projectors at d = 6400 (one
float64 eigendecomposition per layer), target vectors (official compute_z settings) and the
update spread over layers 13–17. It prints seconds per stage and the peak resident memory.

    python benchmarks/gpt2_xl_width.py [--layers 13 14 15 16 17] [--texts 32] [--requests 4]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from nullspace.editing.methods.alphaedit import AlphaEditEditor
from nullspace.editing.hparams import hparams_for
from nullspace.editing.requests import EditRequest
from nullspace.editing.methods.sequential import TargetOptimizer
from nullspace.editing.statistics import collect_key_statistics
from nullspace.editing.world.tokenizer import build_tokenizer
from nullspace.linalg import AbsoluteRule, null_space
from nullspace.settings import device


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def report(stage: str, seconds: float) -> None:
    """Print a stage's time as soon as it ends (a long run still leaves its figures)."""
    print(f"{stage:>40}: {seconds:8.1f} s   (peak resident memory so far {peak_rss_gib():.2f} GiB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=list(hparams_for("gpt2-xl").layers))
    parser.add_argument("--texts", type=int, default=32, help="random-word texts of 32 words for C0")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=50_000)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    timings: dict[str, float] = {}
    run_device = device()

    start = time.perf_counter()
    words = [f"w{i}" for i in range(args.vocab)]
    tokenizer = build_tokenizer(words + ["lives", "in"])
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=1600, n_head=25,
                        n_inner=6400, n_layer=max(args.layers) + 1, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(config).to(run_device).eval()
    params = sum(p.numel() for p in model.parameters())
    timings["build model"] = time.perf_counter() - start
    report("build model", timings["build model"])
    print(f"model: {config.n_layer} blocks of width 1600 / d_ff 6400, {params / 1e6:.0f}M parameters, "
          f"on {run_device}", flush=True)

    start = time.perf_counter()
    texts = [" ".join(rng.choice(words, 32)) for _ in range(args.texts)]
    stats = collect_key_statistics(model, tokenizer, args.layers, texts, batch_size=8)
    timings["key statistics"] = time.perf_counter() - start
    report("key statistics", timings["key statistics"])
    tokens = next(iter(stats.values())).token_count

    start = time.perf_counter()
    rule = AbsoluteRule(2e-2)  # official threshold on E[kkᵀ]
    spaces = {layer: null_space(s.covariance, rule) for layer, s in stats.items()}
    timings["projectors (eigh, d=6400)"] = time.perf_counter() - start
    report("projectors (eigh, d=6400)", timings["projectors (eigh, d=6400)"])

    hparams = hparams_for("gpt2-xl")
    if tuple(args.layers) != hparams.layers:
        from dataclasses import replace
        hparams = replace(hparams, layers=tuple(args.layers))
    targets = TargetOptimizer(hparams)
    subjects = rng.choice(words, args.requests, replace=False)
    objects = rng.choice(words, 2 * args.requests, replace=False)
    requests = [EditRequest(i, "{} lives in", str(s), str(objects[2 * i]), str(objects[2 * i + 1]), "city")
                for i, s in enumerate(subjects)]
    editor = AlphaEditEditor(model, tokenizer, hparams.layers, targets, null_spaces=spaces, l2_weight=10.0)
    start = time.perf_counter()
    z = targets(model, tokenizer, requests, hparams.target_layer)
    timings["target vectors (compute_z)"] = time.perf_counter() - start
    report("target vectors (compute_z)", timings["target vectors (compute_z)"])
    editor.targets = lambda *_: z  # reuse the vectors just timed
    start = time.perf_counter()
    editor.edit(requests)
    timings["update over layers (Eq. 14, spread)"] = time.perf_counter() - start
    report("update over layers (Eq. 14, spread)", timings["update over layers (Eq. 14, spread)"])

    print(f"corpus: {args.texts} texts, {tokens} tokens; requests: {args.requests}; layers {hparams.layers}")
    for layer, space in spaces.items():
        print(f"  layer {layer}: null space {space.null_dim} of {space.dim} directions (λ < 2e-2)")
    print(f"  target NLL after optimisation: {np.round(targets.nll_history, 3).tolist()}")
    print(f"{'total':>40}: {sum(timings.values()):8.1f} s")
    print(f"{'peak resident memory':>40}: {peak_rss_gib():8.2f} GiB")
    if run_device.type == "cuda":
        print(f"{'peak GPU memory':>40}: {torch.cuda.max_memory_allocated() / 2**30:8.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
