"""CounterFact- and ZsRE-style scores of an edited model, and its general ability.

CounterFact (ROME §3; AlphaEdit Table 1) compares the mean per-token negative log-likelihood of
``" " + object`` after a prompt for the new and the true object:

* efficacy: the new object is more likely than the true one on the edit prompt;
* generalization: the same on paraphrase prompts;
* specificity: on neighbourhood prompts (other subjects whose true object is the edited one's old
  object) the true object stays more likely;

each averaged per request, then over requests, ×100. Top-1 variants ask instead whether the
object's first token is the most likely next token. Fluency is the n-gram entropy of generated
text; consistency the TF-IDF cosine between generated text and reference texts about the new
object. ZsRE scores are top-1 token accuracies of the answer under teacher forcing.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.feature_extraction.text import TfidfVectorizer

from nullspace.editing.prompts import encode_right_padded, target_token_batch, token_ids
from nullspace.editing.requests import EditRequest, QuestionRecord
from nullspace.validation import require_int

__all__ = [
    "CounterFactScores",
    "consistency",
    "counterfact_scores",
    "fact_accuracy",
    "fluency",
    "generate",
    "ngram_entropy",
    "perplexity",
    "target_scores",
    "zsre_scores",
]


@torch.no_grad()
def target_scores(model, tokenizer, prompts: Sequence[str], targets: Sequence[str], batch_size: int = 128
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each ``(prompt, target)``: the mean per-token NLL of ``" " + target`` and whether every
    target token is the top-1 prediction under teacher forcing (for one-token objects: the next
    token is the object). Independent of the tokenizer's padding side.

    Raises:
        ValueError: no prompts, or not one target per prompt; a word unknown to the tokenizer.
    """
    if len(prompts) != len(targets):
        raise ValueError(f"got {len(prompts)} prompts but {len(targets)} targets: give one target per prompt.")
    if not prompts:
        raise ValueError("no prompts given: target_scores needs at least one (prompt, target) pair.")
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    device = next(model.parameters()).device
    nlls, top1 = [], []
    for start in range(0, len(prompts), batch_size):
        inputs, labels = target_token_batch(tokenizer, prompts[start:start + batch_size],
                                            targets[start:start + batch_size], device)
        logits = model(**inputs).logits[:, :-1].float()
        labels = labels[:, 1:]
        scored = labels != -100
        token_nll = F.cross_entropy(logits.transpose(1, 2), labels.clamp_min(0), reduction="none")
        nlls.append(((token_nll * scored).sum(1) / scored.sum(1)).cpu())
        correct = (logits.argmax(-1) == labels) | ~scored
        top1.append(correct.all(1).cpu())
    return torch.cat(nlls), torch.cat(top1)


@dataclass(frozen=True)
class CounterFactScores:
    """CounterFact scores (×100): probability comparisons and their top-1 variants."""

    efficacy: float
    generalization: float
    specificity: float
    efficacy_top1: float
    generalization_top1: float
    specificity_top1: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def _per_request_mean(values: torch.Tensor, counts: Sequence[int]) -> float:
    means, start = [], 0
    for count in counts:
        if count:
            means.append(float(values[start:start + count].float().mean()))
        start += count
    return 100.0 * float(np.mean(means)) if means else float("nan")


def counterfact_scores(model, tokenizer, requests: Sequence[EditRequest]) -> CounterFactScores:
    """Efficacy, generalization and specificity (probability and top-1 variants), ×100.

    Raises:
        ValueError: ``requests`` is empty (every score would be NaN).
        TypeError: an item is not an :class:`EditRequest`.
    """
    _require_requests(requests)
    results = {}
    for kind, prompts_of in (("efficacy", lambda r: [r.edit_prompt]),
                             ("generalization", lambda r: list(r.paraphrase_prompts)),
                             ("specificity", lambda r: list(r.neighborhood_prompts))):
        prompts, new, true, counts = [], [], [], []
        for r in requests:
            ps = prompts_of(r)
            prompts += ps
            new += [r.target_new] * len(ps)
            true += [r.target_true] * len(ps)
            counts.append(len(ps))
        if not prompts:
            results[kind], results[kind + "_top1"] = float("nan"), float("nan")
            continue
        nll_new, top1_new = target_scores(model, tokenizer, prompts, new)
        nll_true, top1_true = target_scores(model, tokenizer, prompts, true)
        if kind == "specificity":
            results[kind] = _per_request_mean(nll_true < nll_new, counts)
            results[kind + "_top1"] = _per_request_mean(top1_true, counts)
        else:
            results[kind] = _per_request_mean(nll_new < nll_true, counts)
            results[kind + "_top1"] = _per_request_mean(top1_new, counts)
    return CounterFactScores(**results)


def _require_requests(requests: Sequence[EditRequest]) -> None:
    if isinstance(requests, EditRequest):
        raise TypeError("requests must be a list of EditRequest: wrap the single request in a list.")
    if not requests:
        raise ValueError("requests is empty: there is nothing to score. Pass the edited requests "
                         "(requests_from_counterfact(records)).")
    for index, request in enumerate(requests):
        if not isinstance(request, EditRequest):
            raise TypeError(f"requests[{index}] is a {type(request).__name__}, not an EditRequest: build requests "
                            "with nullspace.editing.requests.requests_from_counterfact(records).")


@torch.no_grad()
def zsre_scores(model, tokenizer, records: Sequence[QuestionRecord]) -> dict[str, float]:
    """ZsRE token accuracy (×100): the new answer on the question and its rephrasing, and the
    unrelated question's answer (specificity)."""
    if not records:
        raise ValueError("records is empty: there is nothing to score (questions_from_zsre(records)).")

    def accuracy(prompts: list[str], answers: list[str]) -> float:
        device = next(model.parameters()).device
        inputs, labels = target_token_batch(tokenizer, prompts, answers, device)
        predicted = model(**inputs).logits[:, :-1].argmax(-1)
        labels = labels[:, 1:]
        scored = labels != -100
        per_record = ((predicted == labels) & scored).sum(1).float() / scored.sum(1)
        return 100.0 * float(per_record.mean())

    return {
        "efficacy": accuracy([r.src for r in records], [r.alt for r in records]),
        "generalization": accuracy([r.rephrase for r in records], [r.alt for r in records]),
        "specificity": accuracy([r.loc for r in records], [r.loc_ans for r in records]),
    }


def ngram_entropy(tokens: Sequence[str], n: int) -> float:
    """Entropy (bits) of the distribution of ``n``-grams in ``tokens``."""
    grams = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    total = sum(grams.values())
    if total == 0:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in grams.values())


def _words(text: str) -> list[str]:
    return text.replace(".", " . ").replace("?", " ? ").replace(",", " , ").replace(":", " : ").split()


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 40, top_k: int = 5,
             seed: int = 0) -> list[str]:
    """Top-k sampled continuations (the CounterFact generation setting), seeded; one prompt at a
    time with the model's key-value cache."""
    max_new_tokens = require_int(max_new_tokens, "max_new_tokens", minimum=0)
    top_k = require_int(top_k, "top_k", minimum=1)
    prompt_ids = token_ids(tokenizer, prompts, "prompts")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    limit = getattr(model.config, "n_positions", 1024)
    texts = []
    for row in prompt_ids:
        if not row:
            raise ValueError("a generation prompt encodes to no token: give a non-empty prompt.")
        ids = torch.tensor([row], device=device)
        tokens, step_input, past = ids[0].tolist(), ids, None
        for _ in range(min(max_new_tokens, limit - ids.shape[1])):
            out = model(input_ids=step_input, past_key_values=past, use_cache=True,
                        attention_mask=torch.ones(1, len(tokens), dtype=torch.long, device=device))
            past = out.past_key_values
            values, indices = out.logits[0, -1].float().topk(top_k)
            choice = indices[torch.multinomial(F.softmax(values, -1), 1, generator=generator)]
            tokens.append(int(choice))
            step_input = choice.view(1, 1)
        texts.append(tokenizer.decode(tokens, skip_special_tokens=True))
    return texts


def fluency(texts: Sequence[str]) -> float:
    """The CounterFact fluency score ×100: the mean over texts of ``(2/3·H2 + 4/3·H3) / 2``."""
    if not texts:
        raise ValueError("texts is empty: fluency is a mean over generated texts; generate at least one.")
    scores = [(2 / 3 * ngram_entropy(_words(t), 2) + 4 / 3 * ngram_entropy(_words(t), 3)) / 2 for t in texts]
    return 100.0 * float(np.mean(scores))


def consistency(generated: Sequence[str], references: Sequence[str], vectorizer: TfidfVectorizer) -> float:
    """TF-IDF cosine ×100 between the generated texts and reference texts about the new object
    (both joined), with ``vectorizer`` already fitted on a corpus."""
    vectors = vectorizer.transform([" ".join(generated), " ".join(references)]).toarray()
    norms = np.linalg.norm(vectors, axis=1)
    if not norms.all():
        return 0.0
    return 100.0 * float(vectors[0] @ vectors[1] / (norms[0] * norms[1]))


def fact_accuracy(model, tokenizer, prompts: Sequence[str], objects: Sequence[str]) -> float:
    """Top-1 accuracy (×100) of ``objects`` after ``prompts``: how many facts the model still knows
    (raises ``ValueError`` on empty or mismatched lists, as :func:`target_scores`)."""
    _, top1 = target_scores(model, tokenizer, prompts, objects)
    return 100.0 * float(top1.float().mean())


@torch.no_grad()
def perplexity(model, tokenizer, texts: Sequence[str], batch_size: int = 32, max_length: int = 128) -> float:
    """``exp`` of the mean next-token NLL over every token of ``texts`` (each truncated to
    ``max_length`` tokens). Independent of the tokenizer's padding side.

    Raises:
        ValueError: no text, or no text of two tokens or more (no next token to predict).
    """
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    max_length = require_int(max_length, "max_length", minimum=2)
    if not texts:
        raise ValueError("texts is empty: perplexity needs at least one held-out text.")
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        enc = encode_right_padded(tokenizer, texts[start:start + batch_size], device, argument="texts",
                                  max_length=max_length)
        logits = model(**enc).logits[:, :-1].float()
        labels = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].bool()
        nll = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
        total += float(nll[mask].sum())
        count += int(mask.sum())
    if count == 0:
        raise ValueError("no text has two tokens or more, so there is no next token to predict: give longer texts.")
    return math.exp(total / count)
