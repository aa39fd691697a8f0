"""AlphaEdit's Table-1 protocol on your own model and data: N edits in batches of B, scored at the end.

    python -m nullspace.editing.run_paper_protocol --model gpt2-xl --methods MEMIT AlphaEdit \\
        [--memit-variant table1|eq15] [--dataset counterfact|multi_counterfact|zsre] [--edits 2000] \\
        [--batch 100] [--every 5] [--glue-dir DIR --glue-every 5] --out results.json

Everything is read from the user's disk: the model from the local Hugging Face cache or a
``save_pretrained`` folder (:mod:`nullspace.editing.models`), the data from ``NULLSPACE_DATA_DIR``
in the official formats (:mod:`nullspace.editing.official_data`), the corpus for ``C0`` from its
``corpus/`` (cached under ``NULLSPACE_CACHE_DIR``). The settings are the official ones for the model
(:mod:`nullspace.editing.hparams`; ``--hparams`` borrows another model's, ``--layers`` overrides
the edited layers). Keys and target vectors are averaged over the bare prompt and five texts sampled
from the model, as the official code does (:mod:`nullspace.editing.contexts`). MEMIT is Table 1's
baseline (``--memit-variant table1``: no cache of edited keys) or Eq. 15's (``eq15``). Each method
edits the first ``--edits`` requests in batches of ``--batch`` on the same unedited model (restored
between methods) through the course's runner
(:func:`~nullspace.editing.evaluation.experiment.run_sequential_editing`), is scored as the
official runner scores CounterFact (efficacy, generalization, specificity for every request;
fluency and consistency, against the attribute snippets with the official IDF statistics when they
are in the data folder, for every ``--generation-interval``-th request) or ZsRE (``--dataset zsre``:
the edit inserts ``answers[0]``; efficacy, generalization and specificity are the token-level
top-1 accuracies of ``answers[0]`` after ``src`` and after ``rephrase`` and of ``loc_ans`` after
``loc + "?"``), and tracks general ability every ``--every`` batches: perplexity of held-out
corpus texts (the texts after those used for ``C0``) and the accuracy of the true objects on the
edited requests' neighbourhood prompts (ZsRE: of ``loc_ans`` after ``loc + "?"``). With
``--glue-dir``, the six tasks of the paper's Fig. 4 (SST, MRPC, CoLA, RTE, MMLU, NLI; the
user's copies of the official evaluation's files, :mod:`nullspace.editing.evaluation.glue_data`)
are scored as the official evaluation scores them (:mod:`nullspace.editing.evaluation.glue`: 100
tests per task, no few-shot examples, F1 on the 0–1 scale) before editing and after every
``--glue-every`` batches, as the official ``--downstream_eval_steps``. Results are written as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from nullspace.editing.contexts import MEMIT_CONTEXT_LENGTHS, sampled_context_templates
from nullspace.editing.corpus import load_corpus
from nullspace.editing.evaluation.counterfact import OFFICIAL_LOC_SUFFIX
from nullspace.editing.evaluation.experiment import (
    CounterFactEvaluation,
    Evaluation,
    GeneralAbilityProbe,
    ZsreEvaluation,
    run_sequential_editing,
)
from nullspace.editing.evaluation.glue import GlueEvaluation
from nullspace.editing.hparams import MEMIT_VARIANTS, hparams_for, method_hparams_for
from nullspace.editing.methods.alphaedit import AlphaEditEditor
from nullspace.editing.methods.memit import MemitEditor
from nullspace.editing.methods.sequential import TargetOptimizer
from nullspace.editing.models import load_model
from nullspace.editing.official_data import (
    MissingDataError,
    attribute_snippets,
    counterfact_requests,
    data_file,
    tfidf_vectorizer,
    zsre_records,
)
from nullspace.editing.regime import spectrum_summary
from nullspace.editing.statistics import DEFAULT_CACHE_DIR, key_statistics
from nullspace.projector import fast_projector

METHODS = ("MEMIT", "AlphaEdit")


def _reference_texts(folder: Path | None, dataset: str, requests) -> dict[str, list[str]] | None:
    """Snippets about each request's new object (``snippets[relation_id][target_new.id]``)."""
    try:
        snippets = attribute_snippets(folder)
        records = json.loads(data_file(dataset, folder).read_text(encoding="utf-8"))
    except MissingDataError:
        return None
    by_case = {r["case_id"]: r["requested_rewrite"] for r in records}
    references: dict[str, list[str]] = {}
    for request in requests:
        rewrite = by_case.get(request.case_id, {})
        target_id = rewrite.get("target_new", {}).get("id")
        references[request.target_new] = snippets.get(rewrite.get("relation_id"), {}).get(target_id, [])
    return references


def _dataset(args: argparse.Namespace, heldout: list[str]) -> tuple[list, GeneralAbilityProbe, Evaluation]:
    """The requests of ``--dataset``, the general-ability probe on their unedited neighbours and
    held-out texts, and the official evaluation of that dataset."""
    if args.dataset == "zsre":
        questions = zsre_records(args.data_dir, limit=args.edits)
        probe = GeneralAbilityProbe([q.loc + OFFICIAL_LOC_SUFFIX for q in questions],
                                    [q.loc_ans for q in questions], heldout)
        return [q.as_edit_request() for q in questions], probe, ZsreEvaluation(questions)
    requests = counterfact_requests(args.data_dir, multi=args.dataset == "multi_counterfact", limit=args.edits)
    probe = GeneralAbilityProbe([p for r in requests for p in r.neighborhood_prompts],
                                [r.target_true for r in requests for _ in r.neighborhood_prompts], heldout)
    references = _reference_texts(args.data_dir, args.dataset, requests)
    try:
        vectorizer = tfidf_vectorizer(args.data_dir) if references is not None else None
    except MissingDataError:
        vectorizer = None
    return requests, probe, CounterFactEvaluation(args.generation_interval, references, vectorizer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--hparams", default=None, help="whose official settings to use (default: --model)")
    parser.add_argument("--layers", type=int, nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--memit-variant", default="table1", choices=MEMIT_VARIANTS,
                        help="table1: no cache of edited keys (AlphaEdit's Table 1); eq15: with it")
    parser.add_argument("--dataset", default="counterfact", choices=("counterfact", "multi_counterfact", "zsre"))
    parser.add_argument("--data-dir", type=Path, default=None, help="default NULLSPACE_DATA_DIR")
    parser.add_argument("--edits", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--every", type=int, default=5, help="batches between general-ability measurements")
    parser.add_argument("--statistics-texts", type=int, default=None, help="default: the official 100,000")
    parser.add_argument("--tokens-per-text", type=int, default=None, help="default: the model's context length")
    parser.add_argument("--heldout-texts", type=int, default=100)
    parser.add_argument("--generation-interval", type=int, default=10,
                        help="fluency and consistency on every n-th request (official --generation_test_interval)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--glue-dir", type=Path, default=None,
                        help="folder with sst2.pkl, mrpc.pkl, cola.pkl, rte.pkl, mmlu.pkl, nli.pkl (the official "
                             "glue_eval files); default: no GLUE tasks")
    parser.add_argument("--glue-every", type=int, default=5, help="batches between GLUE measurements")
    parser.add_argument("--glue-tests", type=int, default=100, help="tests per GLUE task (official: 100)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = parser.parse_args(argv)
    if min(args.edits, args.batch, args.every, args.generation_interval, args.glue_every, args.glue_tests) < 1:
        parser.error("--edits, --batch, --every, --generation-interval, --glue-every and --glue-tests must be "
                     "positive.")
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; choose another --out or pass --overwrite to replace it.")

    settings_name = args.hparams or args.model
    hparams, methods = hparams_for(settings_name), method_hparams_for(settings_name)
    if args.layers:
        hparams = replace(hparams, layers=tuple(args.layers))
    statistics_texts = args.statistics_texts or methods.statistics_texts
    corpus = load_corpus(data_file("corpus", args.data_dir), statistics_texts + args.heldout_texts)
    texts, heldout = corpus[:statistics_texts], corpus[statistics_texts:]
    requests, probe, evaluation = _dataset(args, heldout)
    glue = GlueEvaluation(args.glue_dir, tests=args.glue_tests) if args.glue_dir is not None else None
    model, tokenizer = load_model(args.model)
    config = model.config
    max_length = args.tokens_per_text or int(getattr(config, "n_positions", None)
                                             or getattr(config, "max_position_embeddings", 1024))
    stats = key_statistics(model, tokenizer, args.model, hparams.layers, texts, cache_dir=args.cache_dir,
                           max_length=max_length)
    covariances = {layer: s.covariance for layer, s in stats.items()}
    contexts = sampled_context_templates(model, tokenizer, MEMIT_CONTEXT_LENGTHS)
    results = {"model": args.model, "settings": settings_name, "dataset": args.dataset, "edits": len(requests),
               "batch": args.batch, "layers": list(hparams.layers), "statistics_texts": len(texts),
               "tokens_per_text": max_length, "context_templates": list(contexts), "methods": {}}
    if glue is not None:
        results.update(glue_tasks=list(glue.tasks), glue_tests=glue.tests, glue_every=args.glue_every)
    for method in args.methods:
        if method == "MEMIT":
            editor = MemitEditor(model, tokenizer, hparams.layers, TargetOptimizer(hparams, contexts),
                                 key_covariances=covariances, covariance_weight=methods.memit_covariance_weight,
                                 variant=args.memit_variant, context_templates=contexts)
        else:
            projectors = {layer: fast_projector(c, methods.alphaedit_rule) for layer, c in covariances.items()}
            for layer, projector in projectors.items():
                print(f"layer {layer}: " + spectrum_summary(eigenvalues=projector.eigenvalues,
                                                            threshold=getattr(methods.alphaedit_rule,
                                                                              "threshold_value", None)), flush=True)
            editor = AlphaEditEditor(model, tokenizer, hparams.layers, TargetOptimizer(hparams, contexts),
                                     null_spaces=projectors, l2_weight=methods.alphaedit_l2,
                                     context_templates=contexts)
        glue_history: dict[str, list] = {}

        def measure_glue(batches: int, edits: int) -> None:
            if glue is not None and batches % args.glue_every == 0:
                glue_history.setdefault("edits", []).append(edits)
                for task, f1 in glue(model, tokenizer).items():
                    glue_history.setdefault(task, []).append(f1)

        result = run_sequential_editing(editor, tokenizer, requests, args.batch, probe, setting=settings_name,
                                        every=args.every, evaluation=evaluation,
                                        variant=args.memit_variant if method == "MEMIT" else "",
                                        after_batch=measure_glue)
        editor.reset()
        results["methods"][method] = result.as_dict()
        if glue is not None:
            results["methods"][method]["glue_f1"] = glue_history
        print(f"{method}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.scores.items()), flush=True)
        del editor
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
