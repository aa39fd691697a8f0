"""Every continual-learning method on both course benchmarks over three seeds.

Prints, per benchmark and method: ACC, BWT and plasticity (mean ± std over seeds, in %), the
seconds per run, and the time of one Adam-NSCL training step relative to one plain Adam step on
the course CNN, measured in this run by interleaving the two on the same batches.

    python benchmarks/continual.py [--seeds 0 1 2] [--benchmarks digits gratings] [--json out.json]

With ``NULLSPACE_CL_BENCHMARK=cifar100`` (and ``NULLSPACE_CIFAR100_DIR`` pointing at the
``cifar-100-python`` folder) it runs the paper's 10-split CIFAR-100 with ResNet-18 instead: a GPU job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from nullspace.continual import recipes
from nullspace.continual.methods import AdamNSCL, AdamNSCLMethod
from nullspace.continual.trainer import train_sequence
from nullspace.settings import cl_benchmark_name, threads


def format_stat(values: list[float]) -> str:
    return f"{np.mean(values):6.2f} ± {np.std(values):4.2f}"


def step_time_ratio(name: str, seed: int = 0, steps: int = 60, rounds: int = 10) -> dict[str, float]:
    """Time of a full training step (forward, backward, optimizer step) with AdamNSCL and its null
    spaces after two tasks, relative to torch.optim.Adam on the same model and batches. The two
    are interleaved in rounds, and each keeps its fastest round (the usual estimate under load:
    other processes only ever add time)."""
    bench = recipes.benchmark(name, seed).subset(2)
    method = AdamNSCLMethod(rule=recipes.course_methods(name)["adam-nscl"]().rule)
    _, model = train_sequence(bench, method, recipes.model_factory(name, bench), recipes.train_config(name, seed, epochs=2))
    task = bench.tasks[1]
    layers = model.shared_layers()
    null_spaces = {layers[n].weight: ns for n, ns in method.current_null_spaces.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    optimizers = {"adam": torch.optim.Adam(params, lr=1e-6), "adam-nscl": AdamNSCL(params, null_spaces, lr=1e-6)}
    batches = [(task.train_x[i:i + 32], task.train_y[i:i + 32]) for i in range(0, 32 * 8, 32)]
    timings: dict[str, list[float]] = {key: [] for key in optimizers}
    for _ in range(rounds):
        for key, optimizer in optimizers.items():
            tic = time.perf_counter()
            for step in range(steps):
                x, y = batches[step % len(batches)]
                optimizer.zero_grad()
                F.cross_entropy(model(x, task.index), y).backward()
                optimizer.step()
            timings[key].append((time.perf_counter() - tic) / steps)
    adam, nscl = min(timings["adam"]), min(timings["adam-nscl"])
    return {"adam_ms": 1e3 * adam, "adam_nscl_ms": 1e3 * nscl, "ratio": nscl / adam}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    default_benchmarks = ["cifar100"] if cl_benchmark_name() == "cifar100" else ["digits", "gratings"]
    parser.add_argument("--benchmarks", nargs="+", default=default_benchmarks,
                        help="default: digits and gratings, or cifar100 when NULLSPACE_CL_BENCHMARK=cifar100")
    parser.add_argument("--methods", nargs="+", default=list(recipes.METHOD_NAMES))
    parser.add_argument("--threads", type=int, default=threads() or 1,
                        help="torch threads (default: NULLSPACE_THREADS, else 1)")
    parser.add_argument("--json", help="also write every run's accuracy matrix and metrics here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = []
    start = time.perf_counter()
    for name in args.benchmarks:
        print(f"\n== {name}: {recipes.EPOCHS[name]} epochs per task, seeds {args.seeds} ==", flush=True)
        print(f"{'method':24s} {'ACC':>13s} {'BWT':>13s} {'plasticity':>13s} {'s/run':>7s} {'step ms (tasks ≥ 2)':>20s}")
        factories = recipes.course_methods(name)
        for key in args.methods:
            runs = []
            for seed in args.seeds:
                bench = recipes.benchmark(name, seed)
                method = factories[key]()
                result, _ = train_sequence(bench, method, recipes.model_factory(name, bench), recipes.train_config(name, seed))
                runs.append(result)
                records.append({"benchmark": name, "method": key, "seed": seed, **result.metrics,
                                "seconds": result.seconds, "step_seconds": result.step_seconds,
                                "accuracy": np.nan_to_num(result.accuracy, nan=-1).tolist()})
            metrics = [r.metrics for r in runs]
            step_ms = 1e3 * np.mean([np.mean(r.step_seconds[1:]) for r in runs])
            print(f"{runs[0].method:24s} {format_stat([m['ACC'] for m in metrics]):>13s} "
                  f"{format_stat([m['BWT'] for m in metrics]):>13s} "
                  f"{format_stat([m['plasticity'] for m in metrics]):>13s} "
                  f"{np.mean([r.seconds for r in runs]):7.1f} {step_ms:20.2f}", flush=True)
        timing = step_time_ratio(name)
        print(f"step time on the course CNN ({name}, interleaved, fastest of 10 rounds): Adam {timing['adam_ms']:.2f} ms, "
              f"Adam-NSCL {timing['adam_nscl_ms']:.2f} ms, ratio {timing['ratio']:.3f}", flush=True)
        records.append({"benchmark": name, "step_time": timing})
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(records, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
