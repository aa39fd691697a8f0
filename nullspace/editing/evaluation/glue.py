"""General ability as AlphaEdit's Fig. 4 measures it: F1 on SST, MRPC, CoLA, RTE, MMLU and NLI.

The official evaluation (``glue_eval`` of the AlphaEdit code, run with 100 tests per task and no
few-shot examples) prompts the model with each test (:data:`~nullspace.editing.evaluation.glue_data.GLUE_TASKS`),
scores every label word ``w`` by the mean NLL of the tokens of ``" " + w`` read after the prompt in
``prompt + " " + w`` (at the positions the prompt's own token count gives, special tokens included,
as the official code counts them), takes the most likely word as the prediction, and reports the
class-weighted F1 of the predictions (scikit-learn's ``f1_score(average="weighted")``; the
official ``f1_new``, on the 0–1 scale). The official code also generates a few tokens and parses
them (its ``f1``); the curves of Fig. 4 are the likelihood-based ``f1_new``, the only one computed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from nullspace.editing.evaluation.glue_data import GLUE_TASKS, GlueTask, load_glue_task

__all__ = ["OFFICIAL_GENERATION_LENGTH", "GlueEvaluation", "glue_prompt", "label_word_nlls", "task_f1"]

# The official evaluation keeps room for 5 generated tokens when it fits few-shot examples.
OFFICIAL_GENERATION_LENGTH = 5


def _length(tokenizer, text: str) -> int:
    return len(tokenizer(text)["input_ids"])


def glue_prompt(tokenizer, task: GlueTask, example: Mapping, shots: Sequence[Mapping], context_length: int) -> str:
    """The few-shot examples that fit, then the question: the official rule keeps shots in order
    while ``context_length − len(question) − 5`` tokens are not exhausted."""
    question = task.question(example)
    remaining = context_length - _length(tokenizer, question) - OFFICIAL_GENERATION_LENGTH
    context = ""
    for shot in shots:
        text = task.shot(shot)
        remaining -= _length(tokenizer, text)
        if remaining < 0:
            break
        context += text
    return context + question


@torch.no_grad()
def label_word_nlls(model, tokenizer, prompts: Sequence[str], words: Sequence[str], *,
                    batch_size: int = 8) -> torch.Tensor:
    """``(len(prompts), len(words))`` mean per-token NLL (nats) of each label word after each prompt.

    The text ``prompt + " " + word`` is tokenised as the tokenizer does by default (a BOS token
    included where it adds one); the word's tokens are those of ``" " + word`` without special
    tokens, read at positions ``len(tokens(prompt)) + j − 1`` (the official indexing). Texts are
    right-padded ``batch_size`` at a time.
    """
    word_ids = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in words]
    if any(not ids for ids in word_ids):
        raise ValueError(f"a label word of {list(words)} has no token for this tokenizer.")
    jobs = [(row, column) for row in range(len(prompts)) for column in range(len(words))]
    nlls = torch.zeros(len(prompts), len(words), dtype=torch.float64)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        rows = [tokenizer(f"{prompts[r]} {words[c]}")["input_ids"] for r, c in chunk]
        width = max(len(ids) for ids in rows)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in rows], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in rows], device=device)
        logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits.float()
        for i, (r, c) in enumerate(chunk):
            prefix = _length(tokenizer, prompts[r])
            positions = torch.arange(len(word_ids[c]), device=device) + prefix - 1
            log_probs = F.log_softmax(logits[i, positions], dim=-1)
            targets = torch.tensor(word_ids[c], device=device)
            nlls[r, c] = -log_probs.gather(1, targets[:, None]).mean().double().cpu()
    return nlls


def _predictions(task: GlueTask, nlls: torch.Tensor) -> list[int]:
    best = nlls.min(dim=1).values
    predictions = []
    for row, low in zip(nlls, best):
        winners = (row == low).nonzero().flatten().tolist()
        predictions.append(task.predictions[winners[0]] if len(winners) == 1 else task.tie_prediction)
    return predictions


def task_f1(model, tokenizer, task: GlueTask, tests: Sequence[Mapping], shots: Sequence[Mapping] = (), *,
            context_length: int = 1024, batch_size: int = 8) -> float:
    """Class-weighted F1 (0–1) of the model's most likely label word on ``tests`` of ``task``."""
    if not tests:
        raise ValueError(f"{task.name}: no test example to score.")
    prompts = [glue_prompt(tokenizer, task, example, shots, context_length) for example in tests]
    predictions = _predictions(task, label_word_nlls(model, tokenizer, prompts, task.label_words,
                                                     batch_size=batch_size))
    labels = [task.label(example) for example in tests]
    return float(f1_score(labels, predictions, average="weighted"))


@dataclass
class GlueEvaluation:
    """The six tasks (or ``tasks``) read once from ``folder`` (see
    :mod:`~nullspace.editing.evaluation.glue_data`), ``tests`` per task (official: 100) and
    ``few_shots`` solved examples in each prompt (official: 0); calling it on a model gives
    ``{task: F1}``. ``context_length`` bounds the few-shot context (default: the model's
    ``n_positions`` or ``max_position_embeddings``).

    Raises (at construction):
        MissingGlueFileError: a task's file is missing; ValueError: a file is malformed or too short.
    """

    folder: Path | str | None = None
    tests: int = 100
    few_shots: int = 0
    tasks: Sequence[str] = tuple(GLUE_TASKS)
    batch_size: int = 8
    data: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data = {name: load_glue_task(name, self.folder, tests=self.tests, few_shots=self.few_shots)
                     for name in self.tasks}

    def __call__(self, model, tokenizer) -> dict[str, float]:
        config = model.config
        context_length = int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 1024))
        return {name: task_f1(model, tokenizer, GLUE_TASKS[name], tests, shots, context_length=context_length,
                              batch_size=self.batch_size)
                for name, (shots, tests) in self.data.items()}
