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

Sources: the official ``experiments/py/eval_utils_counterfact.py`` and ``eval_utils_zsre.py``
of ROME/MEMIT/AlphaEdit, whose conventions (generation length, the ZsRE suffix) are named below.
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

from nullspace.editing.prompts import encode_right_padded, leading_special_ids, target_token_batch, token_ids
from nullspace.editing.requests import EditRequest, QuestionRecord
from nullspace.validation import require_int

__all__ = [
    "COURSE_LOC_SUFFIX",
    "OFFICIAL_GENERATION_LENGTH",
    "OFFICIAL_LOC_SUFFIX",
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
        logits = model(**inputs, use_cache=False).logits[:, :-1].float()
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


# The official ZsRE evaluation appends "?" to the Natural-Questions ``loc`` prompt; the teaching
# model only ever read questions as "Q: … ? A:" and after a bare "?" predicts "A", so the course
# closes ``loc`` the way it closes its questions (measured in benchmarks/editing.py).
OFFICIAL_LOC_SUFFIX = "?"
COURSE_LOC_SUFFIX = "? A:"


@torch.no_grad()
def zsre_scores(model, tokenizer, records: Sequence[QuestionRecord], *, loc_suffix: str = OFFICIAL_LOC_SUFFIX,
                batch_size: int = 64) -> dict[str, float]:
    """ZsRE scores (×100) as the official code computes them: the token-level top-1 accuracy,
    under teacher forcing, of the inserted answer (``answers[0]``) after the question
    (efficacy) and after its rephrasing (generalization), and of ``loc_ans`` after
    ``loc + loc_suffix`` (specificity; the official suffix is ``"?"``), averaged per record
    and then over records. Records are scored ``batch_size`` at a time (the scores do not depend
    on it; it bounds the memory of the logits, ``batch_size × tokens × vocabulary`` floats)."""
    if not records:
        raise ValueError("records is empty: there is nothing to score (questions_from_zsre(records)).")
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    device = next(model.parameters()).device

    def accuracy(prompts: list[str], answers: list[str], known_words_only: bool = True) -> float:
        per_record = []
        for start in range(0, len(prompts), batch_size):
            inputs, labels = target_token_batch(tokenizer, prompts[start:start + batch_size],
                                                answers[start:start + batch_size], device,
                                                known_words_only=known_words_only)
            predicted = model(**inputs, use_cache=False).logits[:, :-1].argmax(-1)
            labels = labels[:, 1:]
            scored = labels != -100
            per_record.append(((predicted == labels) & scored).sum(1).float() / scored.sum(1))
        return 100.0 * float(torch.cat(per_record).mean())

    return {
        "efficacy": accuracy([r.src for r in records], [r.answer for r in records]),
        "generalization": accuracy([r.rephrase for r in records], [r.answer for r in records]),
        # the official "nq question: …" prefix is read as it comes, unknown words included
        "specificity": accuracy([r.loc + loc_suffix for r in records], [r.loc_ans for r in records], False),
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


# The official runner generates up to 100 tokens in all, prompt included (``max_out_len = 100``).
OFFICIAL_GENERATION_LENGTH = 100


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], *, max_length: int = OFFICIAL_GENERATION_LENGTH,
             top_k: int = 5, seed: int = 0, skip_special_tokens: bool = True, batch_size: int = 256,
             known_words_only: bool = True) -> list[str]:
    """Top-k sampled continuations (the official ``generate_fast``: top-5 sampling until the text
    is ``max_length`` tokens long, prompt included; never beyond the model's context
    ``n_positions``), seeded, in the order of ``prompts``. Each prompt opens with the tokenizer's
    leading special tokens (:func:`~nullspace.editing.prompts.leading_special_ids`: Llama 3's BOS,
    none for GPT-2), which count towards ``max_length`` as in the official code.

    Prompts of equal token length are generated together (up to ``batch_size`` at a time) with the
    model's key-value cache, so no padding is needed. ``skip_special_tokens=False`` keeps tokens
    such as ``<|unk|>`` in the decoded text. Prompts with words the tokenizer does not know are
    refused unless ``known_words_only`` is False (the official context openings, which the
    teaching model reads as ``<|unk|>``).
    """
    max_length = require_int(max_length, "max_length", minimum=1, hint="The official length: 100 tokens in all.")
    top_k = require_int(top_k, "top_k", minimum=1)
    batch_size = require_int(batch_size, "batch_size", minimum=1)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    limit = min(max_length, getattr(model.config, "n_positions", max_length))
    encoded = (token_ids(tokenizer, prompts, "prompts") if known_words_only
               else tokenizer(list(prompts), add_special_tokens=False)["input_ids"])
    for index, ids in enumerate(encoded):
        if not ids:
            raise ValueError(f"prompt {index} ({prompts[index]!r}) encodes to no token.")
    leading = leading_special_ids(tokenizer)  # Llama 3's BOS, as the official tok(prompts) adds it
    encoded = [leading + list(ids) for ids in encoded]
    by_length: dict[int, list[int]] = {}
    for index, ids in enumerate(encoded):
        by_length.setdefault(len(ids), []).append(index)
    texts: list[str] = [""] * len(prompts)
    for length in sorted(by_length):
        group = by_length[length]
        for start in range(0, len(group), batch_size):
            members = group[start:start + batch_size]
            tokens = torch.tensor([encoded[i] for i in members], device=device)
            step_input, past = tokens, None
            while tokens.shape[1] < limit:
                out = model(input_ids=step_input, past_key_values=past, use_cache=True,
                            attention_mask=torch.ones(tokens.shape, dtype=torch.long, device=device))
                past = out.past_key_values
                values, indices = out.logits[:, -1].float().topk(top_k, dim=-1)
                picks = torch.multinomial(F.softmax(values, -1), 1, generator=generator)
                step_input = indices.gather(1, picks)
                tokens = torch.cat([tokens, step_input], dim=1)
            for row, index in enumerate(members):
                texts[index] = tokenizer.decode(tokens[row].tolist(), skip_special_tokens=skip_special_tokens)
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
        logits = model(**enc, use_cache=False).logits[:, :-1].float()
        labels = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].bool()
        nll = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
        total += float(nll[mask].sum())
        count += int(mask.sum())
    if count == 0:
        raise ValueError("no text has two tokens or more, so there is no next token to predict: give longer texts.")
    return math.exp(total / count)
