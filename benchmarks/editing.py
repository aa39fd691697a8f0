"""AlphaEdit's Table 1 and Fig. 4 on the course model, with the paper's protocol.

    python benchmarks/editing.py [--parts tuning table official zsre ablation alphaedit] [--fresh]

Every run edits requests of the fact world in sequence from the unedited model and is scored
as the official runner scores it (:mod:`nullspace.editing.evaluation.experiment`); general
ability (accuracy on unedited facts in and out of ``K0``, perplexity, ``‖ΔW‖`` per layer) is
measured every 200 edits. The parts:

1. ``tuning``: each method's settings are chosen on the 160 *held-out* requests (the fact world's
   requests after the first 2000, never scored): every grid point edits them in batches of 20,
   and the setting with the best ROME score S (harmonic mean of efficacy, generalization and
   specificity) is kept, and every other part runs with it. The lessons' demonstrations use the
   ``course-gpt2`` entry of ``nullspace/editing/hparams.py``; the script says whether the held-out
   choice agrees with it.
2. ``table``: the Table-1 analogue at the paper's protocol, 2000 edits in batches of 100 and of
   25: FT, ROME, MEMIT (Table 1: no cache of edited keys), MEMIT + Kp (Eq. 15) and AlphaEdit.
   ROME edits one request at a time, so its run serves both batch sizes.
3. ``official``: the paper's GPT-2 XL settings (λ = 20000; threshold 2e-2, L2 = 10) at 2000 × 100.
4. ``zsre``: the same facts as ZsRE questions (MEND's schema), 2000 × 100; specificity with the
   official suffix ``"?"`` and with the course's ``"? A:"``.
5. ``ablation``: each protocol difference switched back to the course's earlier choice, one at a
   time, for Table-1 MEMIT and AlphaEdit at 2000 × 100 (contexts from the world or none, a flat
   key mean, the KL term at the last token, ``C0`` without the preserved facts' keys, and a ridge
   ``I`` added to Table-1 MEMIT's system: the mechanism of its collapse), ROME's clamp and
   target, the earlier ROME pairing of keys (an insertion error, measured directly) and the
   generation length.
6. ``alphaedit``: what it takes for AlphaEdit to stay close to the unedited model: the threshold,
   the weight of the preserved facts' keys in ``C0`` and which facts ``K0`` lists.

Writes ``benchmarks/results/editing.json`` after every run (a rerun skips the runs already there
unless ``--fresh``, or the settings, data or model changed; two invocations with different
``--parts`` or ``--methods`` may run at once and keep each other's rows) and the lesson's cached copy
``data/results/editing_protocol.json``; prints every row, each part's wall time and the total.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock

from nullspace.data_checksums import record_checksum
from nullspace.editing.evaluation.counterfact import COURSE_LOC_SUFFIX
from nullspace.editing.evaluation.experiment import (
    ExperimentResult,
    GeneralAbilityProbe,
    ZsreEvaluation,
    generation_scores,
    harmonic_score,
    run_sequential_editing,
    score_header,
    score_row,
)
from nullspace.editing.evaluation.protocol import (
    LESSON_RESULTS,
    TUNING_BATCH,
    TUNING_GRIDS,
    ablation_plan,
    describe_settings,
    display_name,
    protocol_fingerprint,
)
from nullspace.editing.evaluation.shift import mean_shift, preserved_hidden_states, principal_plane
from nullspace.editing.methods.alphaedit import AlphaEditEditor
from nullspace.editing.methods.rome import rome_update
from nullspace.editing.methods.sequential import TargetOptimizer, request_keys, subject_outputs
from nullspace.editing.preserved import knowledge_covariance, preserved_fact_keys
from nullspace.editing.workbench import PROTOCOL_EDITS, Workbench, prepare_workbench
from nullspace.linalg import AbsoluteRule, null_space
from nullspace.paths import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results" / "editing.json"
PARTS = ("tuning", "table", "official", "zsre", "ablation", "alphaedit")
EDITS = PROTOCOL_EDITS  # AlphaEdit's protocol: 2000 edits
PROBE_EVERY_EDITS = 200
# Fluency and consistency on every 10th scored request (200 requests, 600 texts of 100 tokens): the
# official runner's --generation_test_interval defaults to 1; every request would add about three
# minutes of CPU to each run here.
GENERATION_INTERVAL = 10
NAME_WIDTH = 58
OFFICIAL_SETTINGS = {"memit_covariance_weight": 20000.0, "alphaedit_rule": AbsoluteRule(2e-2), "alphaedit_l2": 10.0}
# The methods of Table 1, each with what names it apart from the course settings (the paper's
# comparison first, so that an interrupted run has it).
TABLE_METHODS = (("MEMIT", {"memit_variant": "table1"}), ("AlphaEdit", {}), ("MEMIT", {"memit_variant": "eq15"}),
                 ("FT", {}), ("ROME", {}))


@dataclass
class Run:
    """One sequential-editing run to do: ``key`` names it in the results file."""

    part: str
    label: str
    method: str
    overrides: dict = field(default_factory=dict)
    batch: int = 100
    edits: int = EDITS
    kind: str = "counterfact"  # or "zsre", "heldout"
    editor: Callable[[Workbench], object] | None = None  # for runs that are not bench.editor(...)

    @property
    def key(self) -> str:
        return f"{self.part}|{self.kind}|{self.label}|{self.edits}x{self.batch}"


def selected(run: Run, names: list[str]) -> bool:
    """Whether ``--methods names`` selects ``run``: by its method's name or by its own label."""
    return bool({display_name(run.method, run.overrides), run.label} & set(names))


class Results:
    """The results file: rows are added one run at a time and written at once.

    Two invocations may share the file (for example one part each on a two-core machine): every
    save takes a lock, merges in what the other invocation wrote since (same fingerprint only; this
    invocation's own entries win) and replaces the file atomically, so no row is lost. ``fresh``
    starts from an empty file and does not merge the rows it replaces."""

    SECTIONS = ("rows", "unedited", "tuning", "measurements", "wall_seconds")

    def __init__(self, path: Path, fingerprint: dict, fresh: bool) -> None:
        self.path, self.fingerprint, self.merge = path, fingerprint, not fresh
        stored = self._stored() if self.merge else {}
        self.data = {"fingerprint": fingerprint, **{section: {} for section in self.SECTIONS}, **stored}

    def _stored(self) -> dict:
        """The file's contents, or nothing when it was made with other settings, data or model."""
        stored = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        return stored if stored.get("fingerprint") == self.fingerprint else {}

    def has(self, key: str) -> bool:
        return key in self.data["rows"]

    def add(self, key: str, row: dict) -> None:
        self.data["rows"][key] = row
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{self.path}.lock"):
            if self.merge:
                stored = self._stored()
                for section in self.SECTIONS:
                    self.data[section] = {**stored.get(section, {}), **self.data[section]}
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text(json.dumps(self.data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            partial.replace(self.path)


def requests_of(bench: Workbench, kind: str, edits: int):
    if kind == "heldout":
        return bench.heldout_requests[:edits]
    if kind == "zsre":
        return [q.as_edit_request() for q in bench.questions[:edits]]
    return bench.requests[:edits]


def evaluation_of(bench: Workbench, kind: str):
    if kind == "zsre":
        official, course = ZsreEvaluation(bench.questions), ZsreEvaluation(bench.questions, COURSE_LOC_SUFFIX)

        def both(model, tokenizer, requests):
            scores = official(model, tokenizer, requests)
            scores["specificity_course_suffix"] = course(model, tokenizer, requests)["specificity"]
            return scores
        return both
    return bench.evaluation(generation_interval=GENERATION_INTERVAL if kind == "counterfact" else 20)


def probe_of(bench: Workbench, kind: str) -> GeneralAbilityProbe:
    """The general-ability probe of a run: the full one, or (tuning runs, which choose by S alone)
    a tenth of its facts and texts, reported with the choice for information."""
    if kind != "heldout":
        return bench.probe
    probe = bench.probe
    return GeneralAbilityProbe(probe.fact_prompts[::10], probe.fact_objects[::10], probe.heldout_texts[::10],
                               probe.unlisted_fact_prompts[::10], probe.unlisted_fact_objects[::10])


def run_one(bench: Workbench, run: Run, shift: dict | None = None) -> tuple[dict, ExperimentResult]:
    """Edit, score, and (``shift``) read the preserved facts' hidden states before resetting."""
    editor = run.editor(bench) if run.editor else bench.editor(run.method, **run.overrides)
    variant = run.overrides.get("memit_variant", "") if run.method == "MEMIT" else ""
    every = max(1, PROBE_EVERY_EDITS // run.batch) if run.kind != "heldout" else 10 ** 6
    start = time.perf_counter()
    result = run_sequential_editing(editor, bench.tokenizer, requests_of(bench, run.kind, run.edits), run.batch,
                                    probe_of(bench, run.kind), edits=run.edits, every=every,
                                    evaluation=evaluation_of(bench, run.kind), setting=run.label, variant=variant)
    row = {"part": run.part, "label": run.label, "requests": run.kind, "settings": describe_settings(run.overrides),
           **result.as_dict(), "S": harmonic_score(result.scores), "wall_seconds": time.perf_counter() - start}
    targets = getattr(editor, "targets", None)
    if isinstance(targets, TargetOptimizer) and targets.nll_history:
        row["targets_reached"] = 100.0 * sum(x < 0.5 for x in targets.nll_history) / len(targets.nll_history)
    if shift is not None:
        after = preserved_hidden_states(bench.model, bench.tokenizer, bench.hparams.target_layer, *shift["facts"])
        row["hidden_shift"] = mean_shift(shift["before"], after)
        row["hidden_plane"] = [[round(float(x), 4) for x in point]
                               for point in principal_plane(shift["before"], after)[1]]
    editor.reset()
    return row, result


def shift_facts(bench: Workbench) -> dict:
    """The preserved facts of the Fig. 5 analogue (100 people in K0, every relation) and their
    hidden states in the unedited model."""
    people = bench.world.preserved_people[:100]
    prompts = [relation.templates[0] for _ in people for relation in bench.world.relations]
    subjects = [person.name for person in people for _ in bench.world.relations]
    before = preserved_hidden_states(bench.model, bench.tokenizer, bench.hparams.target_layer, prompts, subjects)
    return {"facts": (prompts, subjects), "before": before}


def tuning_runs(bench: Workbench, edits: int, methods: list[str]) -> list[Run]:
    edits = min(edits, len(bench.heldout_requests))
    return [Run("tuning", f"{method} grid point {index}: {describe_settings(point)}", method, point, TUNING_BATCH,
                edits, "heldout") for method, grid in TUNING_GRIDS.items() if method in methods
            for index, point in enumerate(grid)]


def choose(rows: list[dict]) -> dict[str, dict]:
    """Per Table-1 method (MEMIT per variant), the held-out grid point with the best S:
    ``{name: {"method", "index", "settings", "S", "fact_accuracy"}}``."""
    best: dict[str, dict] = {}
    for row in rows:
        method, index = row["method"], int(row["label"].split("grid point ")[1].split(":")[0])
        name = display_name(method, TUNING_GRIDS[method][index])
        if name not in best or row["S"] > best[name]["S"]:
            best[name] = {"method": method, "index": index, "settings": row["settings"], "S": row["S"],
                          "fact_accuracy": row["fact_accuracy"]}
    return best


def chosen_runs(results: Results) -> list[tuple[str, dict]]:
    """The Table-1 methods with the settings chosen on the held-out requests (the course defaults
    of ``nullspace/editing/hparams.py`` when the tuning part has not been run)."""
    chosen = results.data["tuning"].get("chosen", {})
    runs = []
    for method, names_it in TABLE_METHODS:
        choice = chosen.get(display_name(method, names_it))
        runs.append((method, dict(TUNING_GRIDS[method][choice["index"]]) if choice else dict(names_it)))
    return runs


def table_runs(methods: list[tuple[str, dict]], edits: int) -> list[Run]:
    runs = []
    for batch in (100, 25):
        for method, overrides in methods:
            if method == "ROME" and batch != 100:
                continue  # one request at a time: the batch size does not change ROME's edits
            runs.append(Run("table", display_name(method, overrides), method, overrides, batch, edits))
    return runs


def official_runs(methods: list[tuple[str, dict]], edits: int) -> list[Run]:
    return [Run("official", f"{display_name(m, o)}, official GPT-2 XL settings", m, {**o, **OFFICIAL_SETTINGS},
                edits=edits)
            for m, o in methods if m in {"MEMIT", "AlphaEdit"}]


def zsre_runs(methods: list[tuple[str, dict]], edits: int) -> list[Run]:
    return [Run("zsre", display_name(m, o), m, o, edits=edits, kind="zsre") for m, o in methods]


def ablation_runs(methods: list[tuple[str, dict]], edits: int) -> list[Run]:
    return [Run("ablation", label, m, o, edits=edits) for label, m, o in ablation_plan(methods)]


def alphaedit_runs(methods: list[tuple[str, dict]], edits: int) -> list[Run]:
    (base,) = [o for m, o in methods if m == "AlphaEdit"]
    runs = [Run("alphaedit", f"AlphaEdit: threshold {t:g}", "AlphaEdit", {**base, "alphaedit_rule": AbsoluteRule(t)},
                edits=edits) for t in (1e-3, 5e-3, 5e-2)]
    runs += [Run("alphaedit", f"AlphaEdit: preserved facts' keys weighted α = {a:g}", "AlphaEdit",
                 {**base, "preserved_keys_weight": a}, edits=edits) for a in (4.0, 16.0)]
    runs.append(Run("alphaedit", "AlphaEdit: K0 lists every preserved person (none left out)", "AlphaEdit", base,
                    edits=edits, editor=lambda bench: alphaedit_with_every_preserved_person(bench, base)))
    return runs


def alphaedit_with_every_preserved_person(bench: Workbench, overrides: dict) -> AlphaEditEditor:
    """AlphaEdit whose ``C0(α)`` lists the facts of all preserved people, the 40 the probe keeps
    out of ``K0`` included (their accuracy then measures protection of listed facts)."""
    edit, settings = bench.settings(**overrides)
    keys = preserved_fact_keys(bench.model, bench.tokenizer, bench.world, bench.world.preserved_people, edit.layers)
    spaces = {layer: null_space(knowledge_covariance(bench.statistics[layer].covariance, keys[layer],
                                                     settings.preserved_keys_weight), settings.alphaedit_rule)
              for layer in edit.layers}
    contexts = bench.context_templates("AlphaEdit")
    return AlphaEditEditor(bench.model, bench.tokenizer, edit.layers, TargetOptimizer(edit, contexts),
                           null_spaces=spaces, l2_weight=settings.alphaedit_l2, context_templates=contexts)


def rome_pairing_error(bench: Workbench, requests: int = 100) -> dict:
    """Relative insertion error at the bare prompt of ROME's update when the residual read at the
    bare prompt is paired with the averaged key (the course's earlier pairing) against the
    official pairing (exact insertion at the bare prompt's key)."""
    _, settings = bench.settings()
    layer, contexts = settings.rome_layer, bench.context_templates("ROME")
    c0 = bench.key_covariance(layer)
    chosen = bench.requests[:requests]
    averaged = request_keys(bench.model, bench.tokenizer, layer, chosen, contexts, "flat")
    bare = request_keys(bench.model, bench.tokenizer, layer, chosen, ("{}",))
    now = subject_outputs(bench.model, bench.tokenizer, layer, chosen, "mlp")
    residuals = torch.randn(now.shape, generator=torch.Generator().manual_seed(0)) * now.norm(dim=1, keepdim=True)
    errors = {"earlier course pairing": [], "official pairing": []}
    for k, k_bare, r in zip(averaged, bare, residuals):
        for name, kwargs in (("earlier course pairing", {}), ("official pairing", {"insertion_key": k_bare})):
            delta = rome_update(k, r, c0, **kwargs)
            errors[name].append(float((delta @ k_bare.double() - r.double()).norm() / r.norm()))
    return {name: {"median": float(torch.tensor(v).median()), "max": max(v)} for name, v in errors.items()}


def generation_length_effect(bench: Workbench) -> dict:
    """Fluency of the unedited model with 40 new tokens (the course's earlier length) and with the
    official 100 tokens in all."""
    requests = bench.requests
    return {"40 new tokens": generation_scores(bench.model, bench.tokenizer, requests, max_length=46)["fluency"],
            "100 tokens in all (official)": generation_scores(bench.model, bench.tokenizer, requests)["fluency"]}


def print_row(row: dict) -> None:
    extra = f"  S {row['S']:5.1f}  ‖ΔW‖ " + " / ".join(f"{v:.0f}" for v in row["weight_change"].values())
    print(score_row(f"{row['label']} ({row['edits']}×{row['batch']})"[-NAME_WIDTH:], row, NAME_WIDTH) + extra,
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--fresh", action="store_true", help="ignore the runs already in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cached-only", action="store_true",
                        help="run nothing new: print the runs already in the results file (the others as not run) "
                             "and write the lesson's copy from them")
    parser.add_argument("--tune", nargs="+", default=list(TUNING_GRIDS), choices=list(TUNING_GRIDS),
                        help="the methods whose grids the tuning part runs (the others keep the course defaults)")
    parser.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                        help="run only these rows of the other parts: a method's name (e.g. AlphaEdit "
                             "'MEMIT (Table 1: no cache of edited keys)') or a row's label as printed (e.g. "
                             "'ROME: target at the block output'); default: all")
    parser.add_argument("--edits", type=int, default=EDITS,
                        help="edits per run (a quick check of the script; only the default writes the lesson's copy)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    start = time.perf_counter()
    bench = prepare_workbench()
    if bench.model_name != "course-gpt2":
        print("this benchmark reproduces the protocol on the course model; on GPT-2 XL use the runner with "
              "the official CounterFact/ZsRE files (see lesson 7).")
        return 2
    results = Results(args.out, protocol_fingerprint(bench.model_name), args.fresh)
    print(f"model {bench.model_name}; {len(bench.requests)} scored requests, {len(bench.heldout_requests)} held out; "
          f"edited blocks {bench.hparams.layers}; general ability on {len(bench.probe.fact_prompts)} facts in K0 and "
          f"{len(bench.probe.unlisted_fact_prompts)} left out, every {PROBE_EVERY_EDITS} edits")
    if "counterfact" not in results.data["unedited"]:
        results.data["unedited"]["counterfact"] = bench.unedited_scores(bench.requests[:args.edits])
        results.data["unedited"]["zsre"] = evaluation_of(bench, "zsre")(bench.model, bench.tokenizer,
                                                                         requests_of(bench, "zsre", args.edits))
        results.save()
    print(score_header(NAME_WIDTH))
    print(score_row("unedited", results.data["unedited"]["counterfact"], NAME_WIDTH))
    shift = shift_facts(bench)
    if "hidden_plane_before" not in results.data["measurements"]:  # the unedited cloud of the Fig. 5 analogue
        results.data["measurements"]["hidden_plane_before"] = [[round(float(x), 4) for x in point]
                                                               for point in principal_plane(shift["before"])[0]]
        results.save()
    plans = {"table": table_runs, "official": official_runs, "zsre": zsre_runs, "ablation": ablation_runs,
             "alphaedit": alphaedit_runs}
    for part in args.parts:
        part_start = time.perf_counter()
        print(f"\n== {part} ==", flush=True)
        plan = (tuning_runs(bench, args.edits, args.tune) if part == "tuning"
                else plans[part](chosen_runs(results), args.edits))
        for run in plan:
            if args.methods and part != "tuning" and not selected(run, args.methods):
                continue
            if not results.has(run.key):
                if args.cached_only:
                    print(f"{run.label} ({run.edits}×{run.batch})"[-NAME_WIDTH:].rjust(NAME_WIDTH) + "  not run")
                    continue
                row, _ = run_one(bench, run, shift if run.part == "table" and run.batch == 100 else None)
                results.add(run.key, row)
            print_row(results.data["rows"][run.key])
        if part == "tuning" and not args.cached_only:
            rows = [r for r in results.data["rows"].values() if r["part"] == "tuning"]
            results.data["tuning"] = {"requests": len(bench.heldout_requests), "batch": TUNING_BATCH,
                                      "criterion": "ROME's score S on the held-out requests", "chosen": choose(rows)}
            for name, choice in results.data["tuning"]["chosen"].items():
                point = TUNING_GRIDS[choice["method"]][choice["index"]]
                agrees = bench.settings(**point) == bench.settings(**{k: v for k, v in point.items()
                                                                      if k == "memit_variant"})
                print(f"  chosen for {name}: {choice['settings']} (S {choice['S']:.1f} on the held-out requests; "
                      f"{'the course default' if agrees else 'differs from the course default in hparams.py'})")
        if part == "ablation" and not args.cached_only:
            results.data["measurements"]["rome_insertion_error"] = rome_pairing_error(bench)
            results.data["measurements"]["fluency_by_generation_length"] = generation_length_effect(bench)
            print(f"  ROME insertion error at the bare prompt: {results.data['measurements']['rome_insertion_error']}")
            print(f"  unedited fluency: {results.data['measurements']['fluency_by_generation_length']}")
        if args.cached_only:
            continue
        results.data["wall_seconds"][part] = time.perf_counter() - part_start
        results.save()
        print(f"  {part}: {results.data['wall_seconds'][part] / 60:.1f} min of wall time", flush=True)
    if not args.cached_only:
        results.data["wall_seconds"]["total (this invocation)"] = time.perf_counter() - start
        results.save()
    written = [str(args.out)]
    if args.edits == EDITS and args.out == RESULTS:
        LESSON_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        LESSON_RESULTS.write_text(json.dumps(lesson_subset(results.data), indent=1, sort_keys=True) + "\n",
                                  encoding="utf-8")
        record_checksum(LESSON_RESULTS)  # the course ships this file: its new contents are on purpose
        written.append(str(LESSON_RESULTS))
    print(f"\nwrote {' and '.join(written)}; wall time {(time.perf_counter() - start) / 60:.1f} min")
    return 0


def lesson_subset(data: dict) -> dict:
    """What lesson 7 reads: every row without the per-batch details it does not plot."""
    return {"fingerprint": data["fingerprint"], "unedited": data["unedited"], "tuning": data["tuning"],
            "measurements": data["measurements"], "rows": list(data["rows"].values())}


if __name__ == "__main__":
    sys.exit(main())
