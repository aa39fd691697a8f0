"""One full AlphaEdit batch at GPT-2 XL's width, on a randomly initialised model.

No GPT-2 XL weights can be downloaded here, so this proves the path at full width instead:
a GPT-2 with XL's widths (n_embd 1600, 25 heads, d_ff 6400) and blocks 0–17, enough to hold the
official edited layers 13–17 (the real model has 48 blocks; the loss is read at this model's
output), runs statistics (on a small random-word corpus), the projectors at d = 6400 (one
float32 tridiagonal reduction per layer, eigenvectors of the thinner side only: nullspace.projector), target
vectors (official compute_z settings) and the update spread over layers 13–17 (push-through form
of Eq. 14). It prints, per stage, wall-clock seconds and CPU seconds of this process (the machine
may be shared: CPU seconds are what one free core would take at one thread), the peak resident
memory, C0's spectrum and ‖Pk‖/‖k‖ of the edit keys and of preserved keys (the regime,
nullspace.editing.regime), and the memory the editor holds.

    OMP_NUM_THREADS=1 python benchmarks/gpt2_xl_width.py [--layers 13 14 15 16 17] [--texts 32] [--requests 4]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import resource
import sys
import time

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from nullspace.editing.hparams import hparams_for
from nullspace.editing.keys import keys_at
from nullspace.editing.methods.alphaedit import AlphaEditEditor
from nullspace.editing.methods.sequential import TargetOptimizer, request_keys
from nullspace.editing.regime import regime_report, spectrum_summary
from nullspace.editing.requests import EditRequest
from nullspace.editing.statistics import collect_key_statistics
from nullspace.editing.world.tokenizer import build_tokenizer
from nullspace.linalg import AbsoluteRule
from nullspace.projector import fast_projector
from nullspace.settings import device


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


class Stage:
    """Times a stage in wall-clock and CPU seconds and prints both as soon as it ends."""

    def __init__(self, name: str, timings: dict[str, tuple[float, float]]) -> None:
        self.name, self.timings = name, timings

    def __enter__(self) -> Stage:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        self.timings[self.name] = (wall, cpu)
        print(f"{self.name:>40}: {wall:8.1f} s wall {cpu:8.1f} s CPU   (peak resident memory so far "
              f"{peak_rss_gib():.2f} GiB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=list(hparams_for("gpt2-xl").layers))
    parser.add_argument("--texts", type=int, default=32, help="random-word texts of 32 words for C0")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--width", type=int, nargs=3, default=[1600, 25, 6400], metavar=("D_MODEL", "HEADS", "D_FF"),
                        help="GPT-2 XL's by default; smaller for a quick check of the script")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    timings: dict[str, tuple[float, float]] = {}
    run_device = device()
    print(f"torch threads: {torch.get_num_threads()}", flush=True)

    with Stage("build model", timings):
        words = [f"w{i}" for i in range(args.vocab)]
        tokenizer = build_tokenizer(words + ["lives", "in", "is", "a"])  # "is a": the KL prompt "{} is a"
        d_model, heads, d_ff = args.width
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=d_model, n_head=heads,
                            n_inner=d_ff, n_layer=max(args.layers) + 1, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        model = GPT2LMHeadModel(config).to(run_device).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {config.n_layer} blocks of width {d_model} / d_ff {d_ff}, {params / 1e6:.0f}M parameters, "
          f"on {run_device}", flush=True)

    texts = [" ".join(rng.choice(words, 32)) for _ in range(args.texts)]
    with Stage("key statistics", timings):
        stats = collect_key_statistics(model, tokenizer, args.layers, texts, batch_size=8)
    tokens = next(iter(stats.values())).token_count

    rule = AbsoluteRule(2e-2)  # official threshold on E[kkᵀ]
    with Stage(f"projectors (float32, kept side, d={d_ff})", timings):
        projectors = {layer: fast_projector(s.covariance, rule) for layer, s in stats.items()}
    covariance_of_first = stats[args.layers[0]].covariance
    del stats  # the editor reads only the projectors

    hparams = hparams_for("gpt2-xl")
    if tuple(args.layers) != hparams.layers:
        hparams = replace(hparams, layers=tuple(args.layers))
    targets = TargetOptimizer(hparams)
    subjects = rng.choice(words, args.requests, replace=False)
    objects = rng.choice(words, 2 * args.requests, replace=False)
    requests = [EditRequest(i, "{} lives in", str(s), str(objects[2 * i]), str(objects[2 * i + 1]), "city")
                for i, s in enumerate(subjects)]
    editor = AlphaEditEditor(model, tokenizer, hparams.layers, targets, null_spaces=projectors, l2_weight=10.0)
    del projectors
    with Stage("target vectors (compute_z)", timings):
        z = targets(model, tokenizer, requests, hparams.target_layer)
    editor.targets = lambda *_: z  # reuse the vectors just timed
    with Stage("update over layers (Eq. 14, spread)", timings):
        editor.edit(requests)

    print(f"corpus: {args.texts} texts, {tokens} tokens; requests: {args.requests}; layers {hparams.layers}")
    for layer, projector in editor.projectors.items():
        kept = "U2" if projector.factor_is_null_basis else "U1"
        print(f"  layer {layer}: null space {projector.null_dim} of {projector.dim} directions (λ < 2e-2); "
              f"keeps {kept} {tuple(projector.factor.shape)} {str(projector.dtype)[6:]}")
    first = args.layers[0]
    print("  " + spectrum_summary(eigenvalues=editor.projectors[first].eigenvalues, threshold=2e-2)
          + f" (layer {first})")
    preserved = keys_at(model, tokenizer, first, texts[:16], [5] * len(texts[:16]))  # tokens inside C0
    edit_keys = request_keys(model, tokenizer, first, requests, ("{}",))
    print("  " + regime_report(editor.projectors[first].project, edit_keys, preserved) + f" (layer {first})")
    print(f"  (C0 of layer {first}: trace {float(covariance_of_first.trace()):.3g})")
    held = sum(p.nbytes for p in editor.projectors.values()) + sum(
        t.numel() * t.element_size() for store in (editor.edited_keys, editor.projected_edited_keys,
                                                   editor.edited_gram) for t in store.values())
    print(f"  editor holds {held / 2**30:.3f} GiB beyond the model (projector factors, edited keys)")
    print(f"  target NLL after optimisation: {np.round(targets.nll_history, 3).tolist()}")
    wall = sum(w for w, _ in timings.values())
    cpu = sum(c for _, c in timings.values())
    print(f"{'total':>40}: {wall:8.1f} s wall {cpu:8.1f} s CPU")
    batch_wall = sum(timings[k][0] for k in timings if k != "build model")
    batch_cpu = sum(timings[k][1] for k in timings if k != "build model")
    print(f"{'one AlphaEdit batch (all but the build)':>40}: {batch_wall:8.1f} s wall {batch_cpu:8.1f} s CPU")
    print(f"{'peak resident memory':>40}: {peak_rss_gib():8.2f} GiB")
    if run_device.type == "cuda":
        print(f"{'peak GPU memory':>40}: {torch.cuda.max_memory_allocated() / 2**30:8.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
