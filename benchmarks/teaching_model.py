"""Is the teaching model fit for locate-then-edit? Prints the figures the README quotes.

    python benchmarks/teaching_model.py [--model data/course-gpt2] [--requests 100]

1. Fact recall: top-1 on the training (biography) prompts, and on question prompts for people
   seen only in biographies.
2. Where facts are recalled: per-layer indirect effects of a causal trace (ROME §2.1) at the
   subject's last token and at the last token, averaged over facts.
3. The premise of locate-then-edit: for counterfactual requests, a vector added at the subject's
   last token at the output of the last edited block (compute_z) makes the new object top-1
   with NLL < 0.5, within the norm clamp, and transfers to the relation's other prompts.
4. Key geometry at the edited blocks: effective rank of the people's keys (against the number of
   people), mean |cos| after centering, and the share of an edit key surviving null-space
   projectors built from the general text's keys (with and without the preserved subjects' keys).
5. A single-fact edit by the closed form of AlphaEdit Eq. 6 (lesson 5): does the new fact become
   top-1, and what share of the other people's facts changes (against the rank-one edit that
   ignores them)?
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from nullspace.capture import record_covariances, weight_as_matrix
from nullspace.editing.geometry import effective_rank, kept_share, mean_abs_cosine
from nullspace.editing.hparams import hparams_for
from nullspace.editing.keys import compute_ks, ffn_output_layer, subject_token_index
from nullspace.editing.memory import least_squares_update, rank_one_update
from nullspace.editing.models import COURSE_MODEL_DIR
from nullspace.editing.evaluation.recall import next_token_logits, object_token_id
from nullspace.editing.targets import adding_to_hidden_state, compute_z
from nullspace.editing.world.teaching_model import fact_recall
from nullspace.editing.trace import KINDS, average_indirect_effects, trace_random_facts
from nullspace.editing.world.facts import load_counterfact, load_world
from nullspace.settings import threads
from nullspace.linalg import AbsoluteRule, CovarianceAccumulator, RelativeRule, null_space


def recall(model, tokenizer, world) -> None:
    print("1. fact recall (top-1)")
    print(f"   training prompts, all people: {fact_recall(model, tokenizer, world, 'templates'):.3f}")
    print(f"   question prompts, people seen only in biographies: "
          f"{fact_recall(model, tokenizer, world, 'questions', bio_only=True):.3f}")
    print(f"   question prompts, people with questions in training: "
          f"{fact_recall(model, tokenizer, world, 'questions', bio_only=False):.3f}")


def indirect_effects(model, tokenizer, world, facts: int) -> None:
    print(f"2. causal trace, mean indirect effect over {facts} facts (restored − corrupted probability)")
    traces = trace_random_facts(model, tokenizer, world, facts, seed=1)
    effects = average_indirect_effects(traces)
    n_layers = len(model.transformer.h)
    clean = np.mean([t["hidden"].p_clean for t in traces])
    corrupt = np.mean([t["hidden"].p_corrupt for t in traces])
    print(f"   p(answer) clean {clean:.3f}, subject corrupted {corrupt:.3f}")
    for kind in KINDS:
        for column, where in enumerate(("subject's last token", "last token")):
            values = "  ".join(f"L{layer}: {effects[kind][layer, column]:+.3f}" for layer in range(n_layers))
            print(f"   {kind:6s} at {where:20s} {values}")


def premise(model, tokenizer, world, requests: list[dict], contexts: list[str]) -> None:
    hparams = hparams_for("course-gpt2")
    layer = hparams.target_layer
    successes, ratios, transfer = 0, [], []
    for record in requests:
        rewrite = record["requested_rewrite"]
        target = compute_z(model, tokenizer, rewrite, hparams, contexts)
        ratios.append(target.norm_ratio)
        new_id = object_token_id(tokenizer, rewrite["target_new"]["str"])
        relation = world.relation(rewrite["relation_id"])
        prompts = [rewrite["prompt"], *(p for p in (*relation.templates, *relation.questions) if p != rewrite["prompt"])]
        hits = []
        for prompt in prompts:
            position = subject_token_index(tokenizer, prompt, rewrite["subject"])
            with adding_to_hidden_state(model, layer, [position], target.delta):
                top = int(next_token_logits(model, tokenizer, [prompt.format(rewrite["subject"])]).argmax(-1)[0])
            hits.append(top == new_id)
        successes += int(target.nll < 0.5 and hits[0])
        transfer.extend(hits[1:])
    print(f"3. premise at block {layer}'s output, subject's last token, {len(requests)} requests "
          f"({len(contexts)} contexts, clamp {hparams.clamp_norm_factor})")
    print(f"   new object top-1 with NLL < 0.5: {successes}/{len(requests)}; "
          f"‖δ‖/‖h‖ mean {np.mean(ratios):.2f}, max {np.max(ratios):.2f}; "
          f"transfer to the relation's other prompts {np.mean(transfer):.3f}")


def general_text_covariance(model, tokenizer, texts: list[str], layer: int) -> torch.Tensor:
    module = ffn_output_layer(model, layer)
    accumulator = CovarianceAccumulator(module.weight.shape[0])
    with record_covariances({"ffn": module}, {"ffn": accumulator}), torch.no_grad():
        for start in range(0, len(texts), 64):
            for text in texts[start:start + 64]:  # one text at a time: no padding tokens counted
                model(**tokenizer(text, return_tensors="pt"))
    return accumulator.covariance


def key_geometry(model, tokenizer, world, contexts: list[str]) -> None:
    print(f"4. key geometry ({len(world.people)} people; keys averaged over {len(contexts)} contexts)")
    texts = world.general_text(biographies_per_person=1)
    for layer in hparams_for("course-gpt2").layers:
        def keys_of(people):
            return compute_ks(model, tokenizer, layer, ["{} lives in"] * len(people), [p.name for p in people],
                              contexts).double()
        everyone, edited, preserved = keys_of(world.people), keys_of(world.edit_people), keys_of(world.preserved_people)
        print(f"   block {layer}: effective rank {effective_rank(everyone):.0f} of {len(world.people)} people "
              f"(d_ff {everyone.shape[1]}); mean |cos| centered {mean_abs_cosine(everyone):.3f}, "
              f"uncentered {mean_abs_cosine(everyone, center=False):.3f}; active units "
              f"{float((everyone > 0).double().mean()):.3f}")
        tokens_c0 = general_text_covariance(model, tokenizer, texts, layer)
        with_subjects = tokens_c0 + preserved.T @ preserved / len(preserved)
        for name, covariance in (("C0 = general-text tokens", tokens_c0),
                                 ("C0 + preserved subject keys", with_subjects)):
            for rule in (AbsoluteRule(2e-2), RelativeRule(1e-2), RelativeRule(1e-3)):
                space = null_space(covariance, rule)
                print(f"     {name:28s} {rule.describe():32s} null {space.null_dim:4d}/{space.dim}: ‖Pk‖/‖k‖ "
                      f"edit keys {float(kept_share(space, edited).mean()):.2f}, "
                      f"preserved keys {float(kept_share(space, preserved).mean()):.2f}")


def single_fact_edits(model, tokenizer, world, requests: list[dict], contexts: list[str]) -> None:
    hparams = hparams_for("course-gpt2")
    layer = hparams.target_layer
    module = ffn_output_layer(model, layer)
    # one biography prompt per fact (the relation's first template): 3,600 prompts per pass
    rows = [(p.name, prompt, obj) for p in world.people for _, prompt, obj in world.fact_prompts(p)[::4]]
    prompts = [r[1] for r in rows]
    before = next_token_logits(model, tokenizer, prompts).argmax(-1)
    names = [p.name for p in world.people]
    all_keys = compute_ks(model, tokenizer, layer, ["{} lives in"] * len(names), names, contexts)
    outcomes = {"rank-one (ignores other keys)": [], "least squares, Eq. 6": []}
    for record in requests:
        rewrite = record["requested_rewrite"]
        target = compute_z(model, tokenizer, rewrite, hparams, contexts)
        key = all_keys[names.index(rewrite["subject"])]
        preserved = all_keys[[n != rewrite["subject"] for n in names]]
        weight = weight_as_matrix(module).detach().double()
        value = weight @ key.double() + target.delta.double()
        others = torch.tensor([r[0] != rewrite["subject"] for r in rows])
        new_id = object_token_id(tokenizer, rewrite["target_new"]["str"])
        for method, delta in (
            ("rank-one (ignores other keys)", rank_one_update(weight, key.double(), value)),
            ("least squares, Eq. 6", least_squares_update(weight, preserved, key[None], value[None].float())),
        ):
            original = module.weight.data.clone()
            module.weight.data += delta.T.to(module.weight.dtype)
            after = next_token_logits(model, tokenizer, prompts).argmax(-1)
            top = int(next_token_logits(model, tokenizer, [rewrite["prompt"].format(rewrite["subject"])]).argmax(-1)[0])
            module.weight.data.copy_(original)
            changed = float((after[others] != before[others]).double().mean())
            outcomes[method].append((top == new_id, changed))
    print(f"5. single-fact edits of block {layer}'s FFN output matrix ({len(requests)} requests; "
          f"other people's facts: {int((torch.tensor([r[0] != requests[0]['requested_rewrite']['subject'] for r in rows])).sum())} prompts)")
    for method, results in outcomes.items():
        print(f"   {method:32s} new fact top-1 {np.mean([r[0] for r in results]):.2f}; other facts changed: "
              f"mean {100 * np.mean([r[1] for r in results]):.2f}%, max {100 * np.max([r[1] for r in results]):.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=COURSE_MODEL_DIR)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--trace-facts", type=int, default=40)
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--threads", type=int, default=threads() or 2,
                        help="torch threads (default: NULLSPACE_THREADS, else 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = GPT2LMHeadModel.from_pretrained(args.model).eval()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(args.model)
    world = load_world()
    records = load_counterfact()
    chosen = [records[i] for i in np.random.default_rng(0).permutation(len(records))[: args.requests]]
    contexts = world.context_templates()
    recall(model, tokenizer, world)
    indirect_effects(model, tokenizer, world, args.trace_facts)
    premise(model, tokenizer, world, chosen, contexts)
    key_geometry(model, tokenizer, world, contexts)
    single_fact_edits(model, tokenizer, world, chosen[: args.edits], contexts)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
