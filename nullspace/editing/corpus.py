"""The text corpus that ``C0 = E[k kᵀ]`` is estimated from, read from the user's own disk.

The official code estimates ``C0`` from 100,000 Wikipedia articles (``mom2_dataset = wikipedia``,
``mom2_n_samples = 100000``), each truncated to the model's context length. Two local sources
are read here, never downloaded:

* a folder of UTF-8 ``.txt`` files, one text per file, in file-name order;
* a local copy of a Hugging Face ``datasets`` corpus (Wikipedia, wikitext): a folder written by
  ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or a folder of its data files
  (parquet, arrow, json, csv), read with ``datasets`` offline. Empty texts (wikitext's blank
  lines) are skipped.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CorpusError", "load_corpus", "texts_from_dataset", "texts_from_folder"]


class CorpusError(FileNotFoundError):
    """The corpus is missing, empty or smaller than asked."""


def _check_limit(texts: list[str], limit: int | None, where: Path) -> list[str]:
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of texts, got {limit}.")
        if len(texts) < limit:
            raise CorpusError(f"{where} holds {len(texts)} non-empty texts but {limit} were asked for; add texts "
                              "or ask for fewer (statistics_texts).")
        texts = texts[:limit]
    return texts


def texts_from_folder(folder: Path | str, limit: int | None = None) -> list[str]:
    """The texts of the ``.txt`` files in ``folder`` (sorted by name; empty files skipped).

    Raises:
        CorpusError: the folder does not exist, holds no ``.txt`` file, or fewer than ``limit`` texts.
        ValueError: a file is not UTF-8 (the message names it).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CorpusError(f"the corpus folder {folder} does not exist. Put one UTF-8 .txt file per text there "
                          "(Wikipedia articles, say), or point to a saved `datasets` copy of Wikipedia/wikitext.")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise CorpusError(f"the corpus folder {folder} holds no .txt file; put one UTF-8 .txt file per text there.")
    texts = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError as err:
            raise ValueError(f"{file} is not UTF-8 text ({err}); convert it or remove it from {folder}.") from err
        if text:
            texts.append(text)
        if limit is not None and len(texts) == limit:
            break
    return _check_limit(texts, limit, folder)


def texts_from_dataset(path: Path | str, *, split: str = "train", column: str = "text",
                       limit: int | None = None) -> list[str]:
    """The non-empty ``column`` entries of a local ``datasets`` copy at ``path`` (first ``limit``).

    Raises:
        CorpusError: nothing readable at ``path``, no such split, or fewer than ``limit`` texts.
        KeyError: the dataset has no ``column`` (the message lists its columns).
    """
    import datasets

    path = Path(path).expanduser()
    if not path.exists():
        raise CorpusError(f"no dataset at {path}: save one there with Dataset.save_to_disk (on a machine with the "
                          "data), or put its parquet/json files in that folder.")
    try:
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            loaded = datasets.load_from_disk(str(path))
        else:
            loaded = datasets.load_dataset(str(path), split=None)
    except (FileNotFoundError, ValueError) as err:
        raise CorpusError(f"{path} is not a readable `datasets` copy ({err}).") from err
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise CorpusError(f"{path} has no split {split!r}; it has {sorted(loaded)}.")
        loaded = loaded[split]
    if column not in loaded.column_names:
        raise KeyError(f"{path} has no column {column!r}; its columns are {loaded.column_names}.")
    texts = []
    for text in loaded[column]:
        if text and text.strip():
            texts.append(text)
            if limit is not None and len(texts) == limit:
                break
    return _check_limit(texts, limit, path)


def load_corpus(source: Path | str, limit: int | None = None, **dataset_options) -> list[str]:
    """Texts from ``source``: a folder of ``.txt`` files, else a local ``datasets`` copy."""
    source = Path(source).expanduser()
    if source.is_dir() and any(source.glob("*.txt")):
        return texts_from_folder(source, limit)
    return texts_from_dataset(source, limit=limit, **dataset_options)
