"""Sequential editing on the course model: FT, ROME, MEMIT and AlphaEdit (AlphaEdit Table 1 analogue).

    python benchmarks/editing.py [--edits 300] [--batch 25] [--methods FT ROME MEMIT AlphaEdit]

For every method it runs a small tuning grid (printed), each run editing the first ``--edits``
counterfactual requests of the fact world in batches of ``--batch`` from the unedited model, and
keeps the setting with the best ROME score S (harmonic mean of efficacy, generalization and
specificity). It then prints the Table-1-style comparison: efficacy, generalization, specificity
(probability comparisons, and top-1), fluency, consistency, accuracy on every unedited fact and
perplexity on held-out text, with the unedited model as the first row. Finally it times one
batch of MEMIT against AlphaEdit on the same requests and the same target vectors.

NULLSPACE_EDIT_MODEL=gpt2-xl runs it on GPT-2 XL (official settings only, no grid; a GPU and
about 20 GB of memory for the model, statistics and projectors).
"""

from __future__ import annotations

import argparse
import statistics as stats
import sys
import time

import torch

from nullspace.editing.evaluation import consistency, counterfact_scores, fluency, generate
from nullspace.editing.experiment import ExperimentResult, harmonic_score, run_sequential_editing
from nullspace.editing.workbench import METHODS, Workbench, prepare_workbench
from nullspace.linalg import AbsoluteRule, RelativeRule

GRIDS = {
    "FT": [{"ft_norm_constraint": c} for c in (1e-3, 5e-3, 2e-2)],
    "ROME": [{"rome_layer": layer} for layer in (0, 1)],
    "MEMIT": [{"memit_covariance_weight": lam} for lam in (1e2, 1e3, 1e4, 1e5)],
    "AlphaEdit": [{"alphaedit_rule": rule, "alphaedit_l2": l2}
                  for rule in (AbsoluteRule(1e-2), RelativeRule(1e-3)) for l2 in (1.0, 10.0)],
}
COLUMNS = ("efficacy", "generalization", "specificity", "efficacy_top1", "generalization_top1",
           "specificity_top1", "fluency", "consistency", "fact_accuracy", "perplexity")
HEADER = ("Eff", "Gen", "Spe", "Eff@1", "Gen@1", "Spe@1", "Flu", "Consis", "FactAcc", "PPL")


def describe(overrides: dict) -> str:
    return ", ".join(f"{k.split('_', 1)[1]}={v.describe() if hasattr(v, 'describe') else f'{v:g}'}"
                     for k, v in overrides.items()) or "default"


def row(name: str, scores: dict[str, float]) -> str:
    cells = [f"{scores.get(c, float('nan')):7.1f}" if c != "perplexity" else f"{scores[c]:7.2f}" for c in COLUMNS]
    return f"{name:>38} " + " ".join(cells)


def unedited_scores(bench: Workbench, requests) -> dict[str, float]:
    scores = counterfact_scores(bench.model, bench.tokenizer, requests).as_dict()
    scores.update(bench.probe.measure(bench.model, bench.tokenizer))
    scored = requests[:50]
    texts = generate(bench.model, bench.tokenizer, [r.generation_prompts[0] for r in scored])
    scores["fluency"] = fluency(texts)
    scores["consistency"] = sum(consistency([t], bench.reference_texts.get(r.target_new, []), bench.vectorizer)
                                for t, r in zip(texts, scored)) / len(scored)
    return scores


def time_one_batch(bench: Workbench, batch, repeats: int = 3) -> dict[str, float]:
    """Seconds for one batch edit by MEMIT and by AlphaEdit from the same model state, with the
    same (precomputed) target vectors; the projectors are built before timing, once."""
    z = bench.targets()(bench.model, bench.tokenizer, batch, bench.hparams.target_layer)
    seconds = {}
    for method in ("MEMIT", "AlphaEdit"):
        editor = bench.editor(method)
        editor.targets = lambda *_: z
        runs = []
        for _ in range(repeats):
            editor.reset()
            start = time.perf_counter()
            editor.edit(batch)
            runs.append(time.perf_counter() - start)
        editor.reset()
        seconds[method] = stats.median(runs)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=300)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--no-grid", action="store_true", help="only each method's default setting")
    parser.add_argument("--probe-facts", type=int, default=1200,
                        help="unedited facts asked by the general-ability probe (all: 0)")
    parser.add_argument("--recompute-statistics", action="store_true",
                        help="replace cached C0 files that were computed from other weights")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    bench = prepare_workbench(edits=args.edits, probe_facts=args.probe_facts or None,
                              recompute_statistics=args.recompute_statistics)
    requests = bench.requests
    print(f"model {bench.model_name}; {len(requests)} edits in batches of {args.batch}; edited layers "
          f"{bench.hparams.layers}; general ability on {len(bench.probe.fact_prompts)} unedited facts")
    print(" " * 39 + " ".join(f"{h:>7}" for h in HEADER))
    baseline = unedited_scores(bench, requests)
    print(row("unedited", baseline), flush=True)
    best: dict[str, ExperimentResult] = {}
    grid_off = args.no_grid or bench.model_name != "course-gpt2"
    for method in args.methods:
        for overrides in ([{}] if grid_off else GRIDS[method]):
            editor = bench.editor(method, **overrides)
            result = run_sequential_editing(editor, bench.tokenizer, requests, args.batch, bench.probe,
                                            setting=describe(overrides), every=4,
                                            reference_texts=bench.reference_texts, vectorizer=bench.vectorizer)
            editor.reset()
            score = harmonic_score(result.scores)
            print(row(f"{method} ({describe(overrides)})", result.scores) + f"   S={score:5.1f}", flush=True)
            if method not in best or score > harmonic_score(best[method].scores):
                best[method] = result
    print("\nbest setting per method (ROME score S):")
    print(" " * 39 + " ".join(f"{h:>7}" for h in HEADER))
    print(row("unedited", baseline))
    for method, result in best.items():
        print(row(f"{method} ({result.setting})", result.scores))
    if {"MEMIT", "AlphaEdit"} <= set(args.methods):
        seconds = time_one_batch(bench, requests[:args.batch])
        print(f"\none batch of {args.batch}: MEMIT {seconds['MEMIT']:.3f} s, AlphaEdit {seconds['AlphaEdit']:.3f} s "
              f"(ratio {seconds['AlphaEdit'] / seconds['MEMIT']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
