"""Seconds of lesson 5's causal trace with the restorations batched (the default) and one forward
pass per restoration (``max_batch_rows = samples``, the earlier behaviour), on the course model.

    python benchmarks/trace_speed.py [--facts 12] [--threads 1] [--repeats 1]

Runs ``trace_random_facts`` (every kind, the lesson's seed) both ways and prints the seconds of
each, the ratio, and the largest difference between the two runs' indirect effects (the batching
must not change them beyond round-off). Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from nullspace.editing.models import load_model
from nullspace.editing.trace import KINDS, trace_random_facts
from nullspace.editing.world.facts import load_world
from nullspace.settings import edit_model_name

SAMPLES = 10  # trace_fact's default number of corrupted runs per restoration


def timed(model, tokenizer, world, facts: int, max_batch_rows: int, repeats: int) -> tuple[float, list]:
    best, traces = float("inf"), []
    for _ in range(repeats):
        start = time.perf_counter()
        traces = trace_random_facts(model, tokenizer, world, facts=facts, max_batch_rows=max_batch_rows)
        best = min(best, time.perf_counter() - start)
    return best, traces


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=12, help="facts traced (lesson 5: 12)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; the fastest is reported")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(edit_model_name(), device="cpu")
    world = load_world()
    timed(model, tokenizer, world, 1, 512, 1)  # warm-up: first-call allocations are not the trace's cost
    one_by_one, old = timed(model, tokenizer, world, args.facts, SAMPLES, args.repeats)
    batched, new = timed(model, tokenizer, world, args.facts, 512, args.repeats)
    difference = max(float(np.abs(a[k].indirect_effect - b[k].indirect_effect).max())
                     for a, b in zip(old, new) for k in KINDS)
    print(f"causal trace of {args.facts} facts × {len(KINDS)} kinds, {edit_model_name()}, "
          f"{args.threads} thread(s), fastest of {args.repeats}")
    print(f"  one forward per restoration (max_batch_rows={SAMPLES}): {one_by_one:8.2f} s")
    print(f"  batched restorations (max_batch_rows=512):     {batched:8.2f} s")
    print(f"  speed-up: {one_by_one / batched:.2f}×; largest difference of the indirect effects: {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
