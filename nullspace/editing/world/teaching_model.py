"""The course's small GPT-2: architecture and training command.

    python -m nullspace.editing.world.teaching_model --out data/course-gpt2

trains it from the generated fact world on the CPU and saves model and tokenizer with
``save_pretrained``; ``GPT2LMHeadModel.from_pretrained`` loads it like any GPT-2.

The architecture is a standard ``GPT2LMHeadModel`` whose blocks are *split*: the first
``mlp_blocks`` blocks have their attention weights set to zero and frozen (they are MLP-only),
and the following ``attention_blocks`` blocks have their MLP weights set to zero and frozen
(attention-only). Why: with a name as one token, a normal small GPT-2 copies the name to the last
token with attention and looks the fact up there, where locate-then-edit methods cannot reach it.
With MLPs only before any attention, the only place a lookup can happen is at the subject's own
position, as ROME's causal traces found in GPT-2 XL's early-middle MLPs. Zero weights are still
ordinary GPT-2 weights, so the saved model needs no custom code.

With ``random_keys`` the FFN input weights of the MLP-only blocks are fixed at sparse random
features (ReLU, negative bias): each person's key then switches on a small, nearly private set
of units, instead of the few shared directions a small trained FFN squeezes six facts per person
into. Measured keys of 600 people: effective rank ~520 and centred mean |cos| 0.03 at
initialisation; 389 / 348 and 0.085 / 0.099 (blocks 0 / 1) in the shipped 3,000-step model, as
the trained embeddings group people who share attributes; an earlier prototype with a trained
GELU FFN had ~70 and 0.31. Only ``W_out``, the matrix the editing methods change, is trained in
those blocks.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from nullspace.editing.evaluation.recall import top1_accuracy
from nullspace.editing.world.tokenizer import build_tokenizer
from nullspace.editing.world.facts import World, generate_world

__all__ = ["TrainingConfig", "build_model", "fact_recall", "main", "train", "training_batches"]


@dataclass(frozen=True)
class TrainingConfig:
    """Architecture, data and optimisation settings of the teaching model."""

    world_seed: int = 1
    n_people: int = 600
    n_embd: int = 128
    n_head: int = 4
    mlp_blocks: int = 2
    attention_blocks: int = 2
    d_ff: int = 1024
    activation: str = "relu"
    split: bool = True
    random_keys: bool = True
    key_threshold: float = 1.5
    embedding_std: float = 0.02
    freeze_embeddings: bool = False
    seq_len: int = 96
    batch_size: int = 24
    # 3,000 steps: the shipped model (7.9 min on 2 cores) recalls 97.4% of its facts on the
    # training prompts and 91.8% of biography-only people's facts on question prompts; a
    # 1,200-step schedule stopped at 22%.
    steps: int = 3000
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    seed: int = 0

    @property
    def n_layer(self) -> int:
        return self.mlp_blocks + self.attention_blocks


def _zero_and_freeze(module: torch.nn.Module) -> None:
    for param in module.parameters():
        param.data.zero_()
        param.requires_grad_(False)


def build_model(config: TrainingConfig, tokenizer: PreTrainedTokenizerFast) -> GPT2LMHeadModel:
    """A freshly initialised split GPT-2 (see the module docstring)."""
    torch.manual_seed(config.seed)
    gpt2_config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=config.seq_len, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, n_inner=config.d_ff,
        activation_function=config.activation, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    model = GPT2LMHeadModel(gpt2_config)
    model.loss_type = "ForCausalLM"  # the plain next-token loss, named so transformers does not warn
    for index, block in enumerate(model.transformer.h):
        if not config.split:
            continue
        if index < config.mlp_blocks:
            _zero_and_freeze(block.attn)
            if config.random_keys:
                _freeze_sparse_random_keys(block, config)
        else:
            _zero_and_freeze(block.mlp)
    with torch.no_grad():
        model.transformer.wte.weight.normal_(0.0, config.embedding_std)
    model.transformer.wte.weight.requires_grad_(not config.freeze_embeddings)
    return model


def _freeze_sparse_random_keys(block: torch.nn.Module, config: TrainingConfig) -> None:
    """Fix the FFN input weights at random features with a negative bias, so that each input
    switches on a small random set of units (sparse, near-orthogonal keys)."""
    with torch.no_grad():
        block.mlp.c_fc.weight.normal_(0.0, config.n_embd ** -0.5)  # pre-activations ~ N(0, 1)
        block.mlp.c_fc.bias.fill_(-config.key_threshold)
    for param in (*block.mlp.c_fc.parameters(), *block.ln_2.parameters()):
        param.requires_grad_(False)


def training_batches(world: World, tokenizer: PreTrainedTokenizerFast, config: TrainingConfig,
                     ) -> Iterator[torch.Tensor]:
    """Endless batches ``(batch_size, seq_len)`` of packed documents separated by end-of-text.

    Each row starts at a document start, so prompts at position 0 look like training text; the
    documents that follow give facts earlier context mentioning other people.
    """
    rng = np.random.default_rng([config.seed, config.world_seed])
    documents = world.training_documents(rng)
    eot = tokenizer.eos_token_id
    while True:
        rows = []
        for _ in range(config.batch_size):
            row: list[int] = []
            while len(row) < config.seq_len:
                row += tokenizer(next(documents), add_special_tokens=False)["input_ids"] + [eot]
            rows.append(row[: config.seq_len])
        yield torch.tensor(rows)


def fact_recall(model: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast, world: World,
                kind: str, bio_only: bool | None = None) -> float:
    """Top-1 accuracy over every fact of the selected people (``kind``: ``"templates"`` or
    ``"questions"``; ``bio_only`` restricts to people with (False) or without (True) question
    prompts in training)."""
    people = [p for p in world.people if bio_only is None or (not p.sees_questions) == bio_only]
    rows = [row for p in people for row in world.fact_prompts(p, kind)]
    return top1_accuracy(model, tokenizer, [r[1] for r in rows], [r[2] for r in rows])


def _learning_rate(step: int, config: TrainingConfig) -> float:
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(config: TrainingConfig, log_every: int = 100) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast, World]:
    """Generate the world, build the tokenizer and model, and train it; prints progress."""
    world = generate_world(config.world_seed, config.n_people)
    tokenizer = build_tokenizer(world.vocabulary_words())
    model = build_model(config, tokenizer)
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(0.9, 0.98))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"training a {config.n_layer}-block GPT-2 ({n_params / 1e6:.2f}M parameters) on "
          f"{len(world.people)} people for {config.steps} steps", flush=True)
    probe_rows = [row for p in world.people[:100] for row in world.fact_prompts(p)[::4]]
    probe_prompts, probe_objects = [r[1] for r in probe_rows], [r[2] for r in probe_rows]
    batches = training_batches(world, tokenizer, config)
    start = time.perf_counter()
    model.train()
    running = 0.0
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        batch = next(batches)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running += float(loss.detach())
        if (step + 1) % log_every == 0:
            model.eval()
            recall = top1_accuracy(model, tokenizer, probe_prompts, probe_objects)
            model.train()
            print(f"step {step + 1:5d}/{config.steps}  loss {running / log_every:.3f}  "
                  f"recall (100 people) {recall:.2f}  {time.perf_counter() - start:6.0f} s", flush=True)
            running = 0.0
    model.eval()
    return model, tokenizer, world


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the course's small GPT-2 on the fact world.")
    parser.add_argument("--out", type=Path, required=True, help="directory for save_pretrained")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    for name, value in asdict(TrainingConfig()).items():
        kind = (lambda text: text.lower() in {"1", "true", "yes"}) if isinstance(value, bool) else type(value)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrainingConfig(**{k: getattr(args, k) for k in asdict(TrainingConfig())})
    start = time.perf_counter()
    model, tokenizer, world = train(config)
    minutes = (time.perf_counter() - start) / 60
    recall = fact_recall(model, tokenizer, world, "templates")
    extraction = fact_recall(model, tokenizer, world, "questions", bio_only=True)
    print(f"trained in {minutes:.1f} min; facts top-1 on training prompts {recall:.3f}; "
          f"question prompts, people seen only in biographies {extraction:.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"saved model and tokenizer to {args.out}")


if __name__ == "__main__":
    main()
