"""Choose one continual method's hyperparameter on seeds the benchmark does not report.

Runs the method with each value on each tuning seed, prints ACC, BWT and plasticity per value
(mean over the seeds) and names the value with the highest mean ACC, the course's rule. Every run
goes to ``benchmarks/results/continual_tuning.json``, keyed by benchmark, method and value, so
that a grid can be run in pieces and side by side (the file is written under a lock).

    python benchmarks/continual_tuning.py --benchmark mixed --method ewc \
        --values 100 300 1000 3000 [--seeds 100 101]

The chosen value goes into ``nullspace/continual/recipes.py`` by hand, with the grid it came
from; ``benchmarks/continual.py`` then reports seeds 0, 1, 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from nullspace.continual import recipes

RESULTS = Path(__file__).resolve().parent / "results" / "continual_tuning.json"


def record(path: Path, key: str, runs: list[dict]) -> dict:
    """Add ``runs`` under ``key`` (replacing the runs of the same seeds) and return the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        seeds = {run["seed"] for run in runs}
        stored[key] = sorted([run for run in stored.get(key, []) if run["seed"] not in seeds] + runs,
                             key=lambda run: run["seed"])
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        temporary.replace(path)
        return stored


def summary(stored: dict, benchmark: str, method: str) -> list[tuple[float, dict[str, float], int]]:
    """(value, mean metrics over seeds, number of seeds) for every value of the grid run so far."""
    prefix = f"{benchmark}|{method}|"
    table = []
    for key, runs in stored.items():
        if key.startswith(prefix):
            means = {metric: float(np.mean([run[metric] for run in runs])) for metric in ("ACC", "BWT", "plasticity")}
            table.append((float(key[len(prefix):]), means, len(runs)))
    return sorted(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", required=True, choices=recipes.BENCHMARK_NAMES)
    parser.add_argument("--method", required=True, choices=tuple(recipes.TUNED),
                        help="ewc and lwf: λ; gpm: the learning rate; adam-nscl-paper: a")
    parser.add_argument("--values", type=float, nargs="+", required=True, help="the grid (or a piece of it)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101],
                        help="tuning seeds (default 100 101); the benchmark reports 0, 1, 2, so these must differ")
    parser.add_argument("--epochs", type=int, help="override the benchmark's epochs per task (smoke tests)")
    parser.add_argument("--num-tasks", type=int, help="only the first tasks (smoke tests)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to record the runs (default {RESULTS})")
    args = parser.parse_args(argv)
    reported = sorted(set(args.seeds) & {0, 1, 2})
    if reported:
        parser.error(f"--seeds: {reported} are the seeds benchmarks/continual.py reports; tune on others (default 100 101)")
    torch.set_num_threads(1)
    command = "python benchmarks/continual_tuning.py " + " ".join(argv if argv is not None else sys.argv[1:])
    stored: dict = {}
    for value in args.values:
        runs = []
        make = recipes.course_methods(args.benchmark, tuned={args.method: value})[args.method]
        for seed in args.seeds:
            result = recipes.train_run(args.benchmark, make, seed, args.epochs, args.num_tasks)
            runs.append({"seed": seed, **result.metrics, "seconds": result.seconds, "epochs": result.epochs,
                         "tasks": len(result.accuracy), "command": command,
                         "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
            print(f"{args.method} {value:g} seed {seed}: ACC {result.metrics['ACC']:.2f}, BWT {result.metrics['BWT']:.2f}, "
                  f"plasticity {result.metrics['plasticity']:.2f} ({result.seconds:.0f} s)", flush=True)
        stored = record(args.json, f"{args.benchmark}|{args.method}|{value:g}", runs)
    table = summary(stored, args.benchmark, args.method)
    print(f"\n{args.benchmark}, {args.method} (mean over seeds):")
    for value, means, seeds in table:
        print(f"  {value:>10g}  ACC {means['ACC']:6.2f}  BWT {means['BWT']:6.2f}  plasticity {means['plasticity']:6.2f}"
              f"  ({seeds} seed(s))")
    best = max(table, key=lambda entry: entry[1]["ACC"])
    print(f"highest mean ACC: {best[0]:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
