"""Every continual-learning method on the course benchmarks over three seeds.

Prints, per benchmark and method: ACC, BWT, forgetting and plasticity (mean ± std over seeds,
in %, std with ddof 0) and the seconds per run; then the same for each departure of the official
codes from their papers (``recipes.official_variants``), and the time of one Adam-NSCL training
step relative to one plain Adam step, measured by interleaving the two on the same batches.
Writes every row and every run's accuracy matrix to ``benchmarks/results/continual.json``
(``--update`` keeps the rows of the benchmarks and methods not run this time; every row records
its command).

    python benchmarks/continual.py [--seeds 0 1 2] [--benchmarks digits gratings scrambled mixed]
                                   [--methods …] [--variants …] [--no-variants] [--json PATH] [--update]

The reported seeds are 0, 1, 2; the hyperparameters of the scrambled- and mixed-digits benchmarks
were chosen on seeds 100 and 101 (mixed digits' by ``benchmarks/continual_tuning.py``), GPM's
learning rate and the paper's ``a`` on the other two on seed 100 (``TUNING`` below, ``nullspace/continual/recipes.py``). With
``NULLSPACE_CL_BENCHMARK=cifar100`` (and ``NULLSPACE_CIFAR100_DIR`` pointing at the
``cifar-100-python`` folder) it runs the paper's 10-split CIFAR-100 with ResNet-18 instead: a GPU
job (``--epochs``, ``--num-tasks`` and ``--resnet-width`` shrink it for a smoke test).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock

from nullspace.continual import recipes
from nullspace.continual.methods import AdamNSCL, ContinualMethod
from nullspace.continual.trainer import RunResult, train_sequence
from nullspace.settings import cl_benchmark_name, threads

RESULTS = Path(__file__).resolve().parent / "results" / "continual.json"
TUNING = {
    "digits": "GPM's learning rate and the paper's a on seed 100; the rest from the course's earlier runs on seeds 0-2",
    "gratings": "GPM's learning rate and the paper's a on seed 100; the rest from the course's earlier runs on seeds 0-2",
    "scrambled": "EWC's and LwF's strength (benchmarks/continual_tuning.py, benchmarks/results/continual_tuning.json), "
                 "GPM's learning rate and the paper's a on seeds 100 and 101",
    "mixed": "EWC's and LwF's strength, GPM's learning rate and the paper's a on seeds 100 and 101 "
             "(benchmarks/continual_tuning.py, benchmarks/results/continual_tuning.json)",
    "cifar100": "the official code's settings",
}
METRICS = {"acc": "ACC", "bwt": "BWT", "forgetting": "forgetting", "plasticity": "plasticity"}


def format_stat(values: list[float]) -> str:
    return f"{np.mean(values):6.2f} ± {np.std(values):4.2f}"


def step_time_ratio(name: str, seed: int = 0, steps: int = 60, rounds: int = 10) -> dict[str, float]:
    """Time of a full training step (forward, backward, optimizer step) with AdamNSCL and its null
    spaces after two tasks, relative to torch.optim.Adam on the same model and batches. The two
    are interleaved in rounds, and each keeps its fastest round (the usual estimate under load:
    other processes only ever add time)."""
    bench = recipes.benchmark(name, seed).subset(2)
    method = recipes.course_methods(name)["adam-nscl-course"]()
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


def run_method(name: str, key: str, make: Callable[[], ContinualMethod], seeds: list[int], epochs: int | None,
               num_tasks: int | None, config_changes: dict[str, object], resnet_width: int = 64) -> tuple[dict, list[dict]]:
    """Every seed of one method on one benchmark: the summary row and the per-seed records."""
    results: list[RunResult] = []
    records = []
    for seed in seeds:
        result = recipes.train_run(name, make, seed, epochs, num_tasks, resnet_width, **config_changes)
        results.append(result)
        records.append({"benchmark": name, "method": key, "name": result.method, "seed": seed, **result.metrics,
                        "seconds": result.seconds, "accuracy": np.nan_to_num(result.accuracy, nan=-1).tolist()})
    row = {"benchmark": name, "method": key, "name": results[0].method, "seeds": seeds,
           "epochs": results[0].epochs, "seconds_per_run": float(np.mean([r.seconds for r in results]))}
    for field, metric in METRICS.items():
        values = [r.metrics[metric] for r in results]
        row[field] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    return row, records


def print_row(row: dict) -> None:
    cells = [f"{row[f]['mean']:6.2f} ± {row[f]['std']:4.2f}" for f in METRICS]
    print(f"{row['name']:58s} " + " ".join(f"{c:>15s}" for c in cells) + f" {row['seconds_per_run']:7.1f}",
          flush=True)


def write_report(path: Path, benchmarks: list[str], run_info: dict, rows: list[dict], runs: list[dict],
                 step_times: dict[str, dict], keep_others: bool) -> None:
    """Write the JSON report. Every row and run records the command that produced it.

    With ``keep_others`` the file already there is updated rather than replaced: its rows and runs
    of the (benchmark, method) pairs not run now are kept, and so are the notes of the benchmarks
    not run now; a benchmark's note (``benchmarks``) is replaced only when this run measured its
    step time, or added when it has none.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):  # two invocations with --update may finish side by side
        report: dict = {"benchmarks": {}, "rows": [], "runs": []}
        done = {(row["benchmark"], row["method"]) for row in rows}
        if keep_others and path.is_file():
            old = json.loads(path.read_text(encoding="utf-8"))
            report["benchmarks"] = old["benchmarks"]
            report["rows"] = [row for row in old["rows"] if (row["benchmark"], row["method"]) not in done]
            report["runs"] = [run for run in old["runs"] if (run["benchmark"], run["method"]) not in done]
        for name in benchmarks:
            if name in step_times or name not in report["benchmarks"]:
                report["benchmarks"][name] = {**run_info, "hyperparameters_chosen_on": TUNING[name],
                                              "step_time": step_times.get(name)}
        provenance = {key: run_info[key] for key in ("command", "date", "machine")}
        report["rows"] += [{**row, **provenance} for row in rows]
        report["runs"] += [{**run, **provenance} for run in runs]
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(report, indent=1), encoding="utf-8")
        temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    default_benchmarks = (["cifar100"] if cl_benchmark_name() == "cifar100"
                          else ["digits", "gratings", "scrambled", "mixed"])
    parser.add_argument("--benchmarks", nargs="+", default=default_benchmarks, choices=recipes.BENCHMARK_NAMES,
                        help="default: digits, gratings, scrambled and mixed, or cifar100 when NULLSPACE_CL_BENCHMARK=cifar100")
    parser.add_argument("--methods", nargs="*", default=list(recipes.METHOD_NAMES), choices=recipes.METHOD_NAMES,
                        help="the course's methods to run (default: all; none with a bare --methods)")
    parser.add_argument("--variants", nargs="*", help="only these of the official codes' departures (default: all)")
    parser.add_argument("--no-variants", action="store_true", help="skip the official codes' departures")
    parser.add_argument("--no-step-time", action="store_true", help="skip the step-time measurement")
    parser.add_argument("--epochs", type=int, help="override every benchmark's epochs per task (smoke tests)")
    parser.add_argument("--num-tasks", type=int, help="only the first tasks of each benchmark (smoke tests)")
    parser.add_argument("--resnet-width", type=int, default=64, help="ResNet-18's first-stage width on CIFAR-100 "
                        "(64 in the paper; smaller only for smoke tests)")
    parser.add_argument("--threads", type=int, default=threads() or 1,
                        help="torch threads (default: NULLSPACE_THREADS, else 1, the fastest for these models)")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the results (default {RESULTS})")
    parser.add_argument("--update", action="store_true",
                        help="keep the rows of the benchmarks and methods not run now already in the JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, runs, step_times = [], [], {}
    start = time.perf_counter()
    for name in args.benchmarks:
        epochs = args.epochs or recipes.EPOCHS[name]
        print(f"\n== {name}: {epochs} epochs per task, seeds {args.seeds} ==", flush=True)
        print(f"{'method':58s} " + " ".join(f"{m:>15s}" for m in METRICS.values()) + f" {'s/run':>7s}")
        jobs = [(key, factory, {}) for key, factory in recipes.course_methods(name).items() if key in args.methods]
        if not args.no_variants and name != "cifar100":
            variants = recipes.official_variants(name)
            unknown = sorted(set(args.variants or []) - set(variants))
            if unknown:
                parser.error(f"--variants: {unknown} are not departures measured on {name}; choose from {sorted(variants)}")
            jobs += [(key, factory, changes) for key, (factory, changes) in variants.items()
                     if args.variants is None or key in args.variants]
        for key, factory, changes in jobs:
            row, records = run_method(name, key, factory, args.seeds, args.epochs, args.num_tasks, changes,
                                      args.resnet_width)
            rows.append(row)
            runs.extend(records)
            print_row(row)
        if name != "cifar100" and not args.no_step_time:
            step_times[name] = step_time_ratio(name)
            t = step_times[name]
            print(f"step time ({name}, interleaved, fastest of 10 rounds): Adam {t['adam_ms']:.2f} ms, "
                  f"Adam-NSCL {t['adam_nscl_ms']:.2f} ms, ratio {t['ratio']:.3f}", flush=True)
    wall = time.perf_counter() - start
    print(f"\ntotal {wall:.0f} s")
    run_info = {
        "command": "python benchmarks/continual.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)",
        "seeds": args.seeds,
        "std": "over seeds, ddof 0",
        "wall_seconds": wall,
    }
    write_report(args.json, args.benchmarks, run_info, rows, runs, step_times, keep_others=args.update)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
