"""Tokenising prompts, subjects and objects for editing and evaluation.

Every reader of the package tokenises through here, so that three things hold everywhere:

* text the tokenizer does not know is refused, naming the words (a word-level tokenizer maps every
  unknown word to one shared ``<|unk|>`` token, so an edit of one unknown name would change the key
  of every other);
* batches are padded on the right by the package itself, whatever the tokenizer's
  ``padding_side``: GPT-2 has absolute position embeddings, and the readers take positions counted
  from the start of each text;
* an object is appended with exactly one leading space (the official convention: add the space
  only when it is missing), so ``" Paris"`` and ``"Paris"`` are the same object;
* the tokens the tokenizer puts before every text by default (Llama 3's BOS; none for GPT-2 or
  GPT-J, :func:`leading_special_ids`) open every text the model reads, as in the official code,
  which tokenises with the defaults; positions count them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["encode_right_padded", "leading_special_ids", "require_known_words", "target_token_batch", "token_ids",
           "unknown_token_id", "unknown_words", "with_leading_space"]


def with_leading_space(target: str, name: str = "target") -> str:
    """``target`` with one leading space, as it follows a prompt (``"Paris"`` and ``" Paris"`` both
    give ``" Paris"``; the official ROME/MEMIT code adds the space only when it is missing)."""
    if not isinstance(target, str):
        raise TypeError(f"{name} must be a string (an object such as 'Paris'), got {type(target).__name__} {target!r}.")
    if not target.strip():
        raise ValueError(f"{name} is empty: give the object's text, such as 'Paris'.")
    return target if target.startswith(" ") else " " + target


def _require_strings(texts: Sequence[str], argument: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{argument} must be a list of strings, got the single string {texts!r}: wrap it in a list.")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{argument}[{index}] must be a string, got {type(text).__name__} {text!r}.")
    return texts


def unknown_token_id(tokenizer) -> int | None:
    """The id the tokenizer gives to text it does not know, or None if it has none (GPT-2's
    byte-level BPE encodes every string; it names end-of-text as its "unk" token but never emits it)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        token = getattr(backend.model, "unk_token", None)
        return None if token is None else backend.token_to_id(token)
    unknown = getattr(tokenizer, "unk_token_id", None)
    return None if unknown is None or unknown == getattr(tokenizer, "eos_token_id", None) else unknown


def unknown_words(tokenizer, text: str) -> list[str]:
    """The words of ``text`` that ``tokenizer`` maps to its unknown token (empty when it knows them all)."""
    unknown = unknown_token_id(tokenizer)
    if unknown is None:
        return []
    if getattr(tokenizer, "is_fast", False):
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [text[start:end] for token, (start, end) in zip(encoding["input_ids"], encoding["offset_mapping"])
                if token == unknown]
    return [word for word in text.split() if unknown in tokenizer(word, add_special_tokens=False)["input_ids"]]


def _unknown_words_error(tokenizer, texts: Sequence[str], argument: str) -> ValueError:
    vocabulary = tokenizer.get_vocab()
    described = []
    for text in texts:
        for word in unknown_words(tokenizer, text):
            near = [v for v in dict.fromkeys((word.capitalize(), word.lower(), word.title(), word.strip()))
                    if v != word and v in vocabulary]
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            entry = f"{word!r} in {text!r}{hint}"
            if entry not in described:
                described.append(entry)
    unk = getattr(tokenizer, "unk_token", None) or "the unknown token"
    return ValueError(
        f"{argument} contains words the tokenizer does not know: {'; '.join(described[:10])}"
        f"{' …' if len(described) > 10 else ''}. Each would become {unk}, one token shared by every unknown "
        "word, so an edit of one would change them all. Use words of the tokenizer's vocabulary "
        "(tokenizer.get_vocab(); the fact world's names are capitalised).")


def token_ids(tokenizer, texts: Sequence[str], argument: str) -> list[list[int]]:
    """Token ids of each text (no special tokens), after checking every word is known.

    Raises:
        TypeError: ``texts`` is a single string or holds something else than strings.
        ValueError: a text maps to the unknown token, naming ``argument`` and the words.
    """
    texts = _require_strings(texts, argument)
    if not texts:
        return []
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    unknown = unknown_token_id(tokenizer)
    if unknown is not None and any(unknown in row for row in ids):
        offending = [t for t, row in zip(texts, ids) if unknown in row and _has_unknown_word(tokenizer, t)]
        if offending:
            raise _unknown_words_error(tokenizer, offending, argument)
    return ids


def _has_unknown_word(tokenizer, text: str) -> bool:
    """Whether ``text`` holds a word the tokenizer does not know; the unknown token written out
    (``<|unk|>`` in a context template the model sampled itself) is a token, not such a word."""
    written = getattr(tokenizer, "unk_token", None)
    return any(word != written for word in unknown_words(tokenizer, text))


def require_known_words(tokenizer, texts: Sequence[str], argument: str) -> None:
    """Raise ``ValueError`` naming ``argument`` and the words if any text maps to the unknown token.
    ``{}`` placeholders (prompts, context templates) are ignored."""
    token_ids(tokenizer, [t.replace("{}", " ") for t in _require_strings(texts, argument)], argument)


def leading_special_ids(tokenizer) -> list[int]:
    """The ids the tokenizer puts before every text when it adds its special tokens (Llama 3's
    ``<|begin_of_text|>``; ``[]`` for GPT-2 and GPT-J): ``tokenizer(text)`` is these ids, then
    ``tokenizer(text, add_special_tokens=False)``, then any closing special tokens."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start])
    return []


def _pad_id(tokenizer) -> int:
    for candidate in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if candidate is not None:
            return int(candidate)
    return 0


def encode_right_padded(tokenizer, texts: Sequence[str], device: torch.device | str | None = None, *,
                        argument: str = "texts", max_length: int | None = None,
                        known_words_only: bool = True) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of ``texts``, padded on the right whatever the
    tokenizer's ``padding_side`` (each row keeps the positions of its text alone), truncated to
    ``max_length`` tokens when given. Every row opens with :func:`leading_special_ids` (a BOS
    token for Llama 3). Unknown words are refused (:func:`token_ids`) unless ``known_words_only``
    is False (a corpus read for statistics may hold some)."""
    if known_words_only:
        rows = token_ids(tokenizer, texts, argument)
    else:
        texts = _require_strings(texts, argument)
        rows = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    if not rows:
        raise ValueError(f"{argument} is empty: give at least one text.")
    leading = leading_special_ids(tokenizer)
    rows = [leading + list(row) for row in rows]
    if max_length is not None:
        rows = [row[:max_length] for row in rows]
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), _pad_id(tokenizer), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def target_token_batch(tokenizer, prompts: Sequence[str], targets: Sequence[str], device: torch.device, *,
                       known_words_only: bool = True) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Tokenised ``prompt + " " + target`` texts (one leading space, :func:`with_leading_space`) and
    labels that score only the target's tokens (``-100`` elsewhere), right-padded. Unknown words in
    the prompts are accepted only with ``known_words_only=False`` (the official ZsRE ``loc``
    prompts, ``"nq question: …"``, which the teaching model reads with ``<|unk|>``)."""
    prompts, targets = _require_strings(prompts, "prompts"), _require_strings(targets, "targets")
    if len(prompts) != len(targets):
        raise ValueError(f"got {len(prompts)} prompts but {len(targets)} targets: give one target per prompt.")
    spaced = [with_leading_space(t, f"targets[{i}]") for i, t in enumerate(targets)]
    rows = (token_ids(tokenizer, prompts, "prompts") if known_words_only
            else tokenizer(prompts, add_special_tokens=False)["input_ids"])
    prompt_lengths = [len(leading_special_ids(tokenizer)) + len(row) for row in rows]
    require_known_words(tokenizer, spaced, "targets")
    enc = encode_right_padded(tokenizer, [p + t for p, t in zip(prompts, spaced)], argument="prompts and targets",
                              known_words_only=known_words_only)
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    for row, length in enumerate(prompt_lengths):
        labels[row, :length] = -100
    return {k: v.to(device) for k, v in enc.items()}, labels.to(device)
