"""The six general-ability tasks of AlphaEdit's Fig. 4, read from the user's own copies in the
official evaluation's formats (the official ``glue_eval/dataset`` files), never downloaded.

Put the six files in one folder (``--glue-dir``; default ``$NULLSPACE_DATA_DIR/glue_eval``):

==============  ============================================================================
``sst2.pkl``    SST-2: ``sentence``, ``label`` (1 positive, 0 negative)
``mrpc.pkl``    MRPC: ``sentence1``, ``sentence2``, ``label`` (1 paraphrase)
``cola.pkl``    CoLA: ``sentence``, ``label`` (1 acceptable)
``rte.pkl``     RTE: ``sentence1``, ``sentence2``, ``label`` (GLUE's: 0 entailment, 1 not)
``mmlu.pkl``    MMLU: ``question``, ``choices`` (four strings), ``answer`` (0–3)
``nli.pkl``     NLI: ``sentence1``, ``sentence2``, ``label`` (``"entailment"`` or ``"not_entailment"``)
==============  ============================================================================

Each file is a Python pickle of a list of such dicts (GLUE's validation rows, class-balanced, as the
official ``create_glue_subset.py`` writes them). The official evaluation keeps the first
:data:`FEW_SHOT_POOL` records as the pool of few-shot examples and tests the next ones (100 per
task in AlphaEdit's runner). The files are unpickled with every class lookup refused, so a file
can hold only lists, dicts, strings and numbers: a pickle that tries to build any object is
rejected instead of run.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from nullspace.settings import data_dir

__all__ = ["FEW_SHOT_POOL", "GLUE_TASKS", "GlueTask", "MissingGlueFileError", "glue_folder", "load_glue_task"]

# The official split: the first 10 records are the few-shot pool, the tests follow.
FEW_SHOT_POOL = 10


class MissingGlueFileError(FileNotFoundError):
    """A task's file is not in the GLUE folder."""


@dataclass(frozen=True)
class GlueTask:
    """One task as the official evaluation asks it.

    ``question(example)`` is the prompt the model continues; ``shot(example)`` one solved
    example of the few-shot context; the model's answer is the label word (``label_words``, each
    scored after ``prompt + " "``) with the lowest mean per-token NLL, mapped to a prediction by
    ``predictions`` (same order); a tie gives ``tie_prediction`` (the official comparisons are
    strict). ``label(example)`` is the gold label the prediction is compared with.
    """

    name: str
    file: str
    fields: tuple[str, ...]
    question: Callable[[Mapping], str]
    shot: Callable[[Mapping], str]
    label: Callable[[Mapping], int]
    label_words: tuple[str, ...]
    predictions: tuple[int, ...]
    tie_prediction: int


def _yes_no(label: int) -> str:
    return "Yes" if label == 1 else "No"


def _true_false(label: int) -> str:
    return "True" if label == 1 else "False"


def _mmlu_question(example: Mapping) -> str:
    options = "".join(f"({letter}) {choice}\n" for letter, choice in zip("ABCD", example["choices"]))
    return f"Question: {example['question']}\n{options}Answer:"


def _nli_label(example: Mapping) -> int:
    return 1 if example["label"] == "entailment" else 0


# The official prompts, character for character (spaces and colons included); the label words
# are the official ones, and so is which word counts as which prediction. RTE keeps the official
# quirk: "True" is scored as label 1, which in GLUE's RTE means *not* entailment.
GLUE_TASKS: dict[str, GlueTask] = {task.name: task for task in (
    GlueTask("sst", "sst2.pkl", ("sentence", "label"),
             lambda e: f"Review :{e['sentence']}\nSentiment :",
             lambda e: f"Review : {e['sentence']}\nSentiment : {'positive' if e['label'] == 1 else 'negative'}\n",
             lambda e: int(e["label"]), ("positive", "negative"), (1, 0), 0),
    GlueTask("mrpc", "mrpc.pkl", ("sentence1", "sentence2", "label"),
             lambda e: (f"Are the sentences paraphrases of each other.\nSentence 1: {e['sentence1']}\n"
                        f"Sentence 2: {e['sentence2']}\nAnswer:"),
             lambda e: (f"Are the sentences paraphrases of each other.\nSentence 1: {e['sentence1']}\n"
                        f"Sentence 2: {e['sentence2']}\nAnswer: {_yes_no(e['label'])}\n"),
             lambda e: int(e["label"]), ("Yes", "No"), (1, 0), 0),
    GlueTask("cola", "cola.pkl", ("sentence", "label"),
             lambda e: f"Is this sentence linguistically acceptable?\nSentence: {e['sentence']}\nAnswer: ",
             lambda e: (f"Is this sentence linguistically acceptable?\nSentence: {e['sentence']}\n"
                        f"Answer: {_yes_no(e['label'])}\n"),
             lambda e: int(e["label"]), ("Yes", "No"), (1, 0), 0),
    GlueTask("rte", "rte.pkl", ("sentence1", "sentence2", "label"),
             lambda e: f"{e['sentence1']}\nquestion: {e['sentence2']} True or False?\nanswer:",
             lambda e: (f"{e['sentence1']}\nquestion: {e['sentence2']} True or False?\n"
                        f"answer: {_true_false(e['label'])}\n"),
             lambda e: int(e["label"]), ("True", "False"), (1, 0), 0),
    GlueTask("mmlu", "mmlu.pkl", ("question", "choices", "answer"),
             _mmlu_question,
             lambda e: f"{_mmlu_question(e)} {'ABCD'[int(e['answer'])]}\n",
             lambda e: int(e["answer"]), ("A", "B", "C", "D"), (0, 1, 2, 3), -1),
    GlueTask("nli", "nli.pkl", ("sentence1", "sentence2", "label"),
             lambda e: f"{e['sentence1']} entails the {e['sentence2']} True or False? Answer:",
             lambda e: (f"{e['sentence1']} entails the {e['sentence2']} True or False? Answer: "
                        f"{_true_false(_nli_label(e))}\n"),
             _nli_label, ("True", "False"), (1, 0), 0),
)}


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles lists, dicts, strings and numbers; refuses to look up any class or function."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"the file asks to build {module}.{name}; a GLUE file of the official "
                                     "evaluation holds only lists, dicts, strings and numbers.")


def glue_folder(folder: Path | str | None = None) -> Path:
    """``folder``, or ``$NULLSPACE_DATA_DIR/glue_eval`` when None.

    Raises:
        MissingGlueFileError: neither is given.
    """
    if folder is not None:
        return Path(folder).expanduser()
    root = data_dir()
    if root is None:
        raise MissingGlueFileError("no GLUE folder: pass --glue-dir (or set NULLSPACE_DATA_DIR and put the six "
                                   "files in its glue_eval/ folder).")
    return root / "glue_eval"


def load_glue_task(name: str, folder: Path | str | None = None, *, tests: int = 100,
                   few_shots: int = 0) -> tuple[list[dict], list[dict]]:
    """``(shots, tests)`` of task ``name``: the first ``few_shots`` records of the few-shot pool
    and the ``tests`` records after the pool, as the official ``load_data_split``.

    Raises:
        ValueError: an unknown task; ``few_shots`` outside 0..10; ``tests`` below 1 or more than
            the file holds after the pool; a file that is not a list of records with the task's fields.
        MissingGlueFileError: the file is not in the folder (the message says where to put it).
    """
    if name not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {name!r}; choose from {sorted(GLUE_TASKS)}.")
    if not 0 <= few_shots <= FEW_SHOT_POOL:
        raise ValueError(f"few_shots must be in 0..{FEW_SHOT_POOL} (the official few-shot pool), got {few_shots}.")
    if tests < 1:
        raise ValueError(f"tests must be at least 1, got {tests}.")
    task = GLUE_TASKS[name]
    path = glue_folder(folder) / task.file
    if not path.exists():
        raise MissingGlueFileError(f"{task.file} ({name}) is not in the GLUE folder {path.parent}: put your copy of "
                                   f"the official evaluation's {task.file} at {path}.")
    try:
        with path.open("rb") as handle:
            records = _DataOnlyUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a pickled list of records ({err}); replace it with an intact copy.") from err
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"{path} must hold a list of dicts (one per example), got {type(records).__name__}.")
    for index, record in enumerate(records):
        missing = [f for f in task.fields if f not in record]
        if missing:
            raise ValueError(f"{path}, record {index}: no {missing} ({name} records have {list(task.fields)}).")
    if len(records) < FEW_SHOT_POOL + tests:
        raise ValueError(f"{path} holds {len(records)} records: {FEW_SHOT_POOL} few-shot examples and {tests} tests "
                         f"need {FEW_SHOT_POOL + tests}; ask for at most {max(len(records) - FEW_SHOT_POOL, 0)} tests.")
    return records[:few_shots], records[FEW_SHOT_POOL:FEW_SHOT_POOL + tests]
