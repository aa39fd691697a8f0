"""Loading the language model the editing lessons use: the shipped teaching model or GPT-2 XL.

All load with the very same ``from_pretrained`` calls; only the name changes:

* ``course-gpt2`` (default): the small GPT-2 trained on the fact world, in ``data/course-gpt2``;
* ``gpt2-xl``, ``EleutherAI/gpt-j-6B``, ``meta-llama/Meta-Llama-3-8B`` (the models of AlphaEdit's
  Table 1, :mod:`nullspace.editing.architectures`), any such hub name, or a local folder written
  by ``save_pretrained``: read from the local Hugging Face cache or that folder only, never
  downloaded by the course.

The name comes from ``nullspace.settings.edit_model_name()`` (``NULLSPACE_EDIT_MODEL``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from nullspace.paths import DATA_DIR
from nullspace.settings import device as default_device
from nullspace.settings import edit_model_name

__all__ = ["COURSE_MODEL", "COURSE_MODEL_DIR", "ModelNotAvailableError", "load_model", "model_source"]

COURSE_MODEL = "course-gpt2"
COURSE_MODEL_DIR = DATA_DIR / "course-gpt2"

_MEMORY_HINTS = {
    "gpt2-xl": "GPT-2 XL has 1.56 billion parameters: about 6.5 GB on disk and 7 GB of memory in float32 "
               "(ROME's demo edits it on an 8 GB GPU; collecting its key statistics takes hours).",
}


class ModelNotAvailableError(FileNotFoundError):
    """The requested model's files are not on this machine."""


def model_source(name: str) -> str | Path:
    """What ``from_pretrained`` is given for ``name``: the shipped directory or the hub name."""
    return COURSE_MODEL_DIR if name == COURSE_MODEL else name


def load_model(name: str | None = None, device: torch.device | str | None = None,
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(model, tokenizer)`` for ``name`` (default: ``NULLSPACE_EDIT_MODEL``), in eval mode.

    Never downloads: a hub model must already be in the local Hugging Face cache, otherwise a
    :class:`ModelNotAvailableError` says how to get it. The tokenizer pads with its end-of-text
    token on the right, so batched prompts keep GPT-2's absolute positions.
    """
    name = name or edit_model_name()
    source = model_source(name)
    if name == COURSE_MODEL and not (COURSE_MODEL_DIR / "config.json").exists():
        raise ModelNotAvailableError(
            f"the teaching model is missing from {COURSE_MODEL_DIR}. Restore it from git "
            "(`git checkout -- data/course-gpt2`) or retrain it with "
            "`python -m nullspace.editing.world.teaching_model --out data/course-gpt2`.")
    bars_were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # no "Loading weights" bar in lesson outputs
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True)
    except OSError as err:
        hint = _MEMORY_HINTS.get(name, "Check the memory it needs before downloading it.")
        raise ModelNotAvailableError(
            f"the model {name!r} is not in the local Hugging Face cache, and the course never downloads "
            f"weights. On a machine with internet access run\n"
            f"    python -c \"from transformers import AutoTokenizer, AutoModelForCausalLM; "
            f"AutoTokenizer.from_pretrained('{name}'); AutoModelForCausalLM.from_pretrained('{name}')\"\n"
            f"(or `hf download {name}`), then copy the cache (~/.cache/huggingface) here. {hint} "
            f"Set NULLSPACE_EDIT_MODEL=course-gpt2 to use the shipped small model instead.") from err
    finally:
        if bars_were_on:
            transformers_logging.enable_progress_bar()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model.to(device or default_device()).eval()
    return model, tokenizer
