"""Train a standard (unsplit) GPT-2 on the fact world and store its causal trace for lesson 5.

    python benchmarks/standard_trace.py [--out data/standard-gpt2-trace.json]

Lesson 5 shows the trace of the split teaching model beside that of a GPT-2 with ordinary blocks
trained on the same world (same data, same optimiser, GELU MLPs), to show why the teaching
model is split. The standard model itself is not shipped; this script re-creates the stored
figures (about ten minutes on two CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nullspace.editing.world.teaching_model import TrainingConfig, fact_recall, train
from nullspace.editing.trace import mean_indirect_effects
from nullspace.paths import DATA_DIR
from nullspace.settings import threads

STANDARD = TrainingConfig(split=False, mlp_blocks=2, attention_blocks=2, d_ff=512, steps=1200,
                          seq_len=96, batch_size=24)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR / "standard-gpt2-trace.json")
    parser.add_argument("--threads", type=int, default=threads() or 2,
                        help="torch threads (default: NULLSPACE_THREADS, else 2)")
    parser.add_argument("--facts", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model, tokenizer, world = train(STANDARD)
    recall = fact_recall(model, tokenizer, world, "templates")
    effects = mean_indirect_effects(model, tokenizer, world, facts=args.facts)
    record = {
        "description": "mean indirect effects (restored − corrupted probability) of a standard 4-block "
                       "GPT-2 trained on the fact world; rows are layers, columns [subject's last token, "
                       "last token]; made by benchmarks/standard_trace.py",
        "config": {k: v for k, v in STANDARD.__dict__.items()},
        "fact_recall_templates": round(recall, 4),
        "facts": args.facts,
        "effects": {kind: [[round(float(x), 4) for x in row] for row in table] for kind, table in effects.items()},
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"recall {recall:.3f}; wrote {args.out} in {(time.perf_counter() - start) / 60:.1f} min")
    for kind, table in effects.items():
        print(kind, "subject:", table[:, 0].round(3), "last token:", table[:, 1].round(3))


if __name__ == "__main__":
    main()
