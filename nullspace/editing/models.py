"""Loading the language model the editing lessons use: the shipped teaching model or GPT-2 XL.

All load with the very same ``from_pretrained`` calls; only the name changes:

* ``course-gpt2`` (default): the small GPT-2 trained on the fact world, in ``data/course-gpt2``,
  checked against ``data/CHECKSUMS.sha256`` when loaded;
* ``gpt2-xl``, ``EleutherAI/gpt-j-6B``, ``meta-llama/Meta-Llama-3-8B`` (the models of AlphaEdit's
  Table 1, :mod:`nullspace.editing.architectures`), any such hub name, or a local folder written
  by ``save_pretrained``: read from the local Hugging Face cache or that folder only, never
  downloaded by the course: the hub libraries are held offline while loading.

The name comes from ``nullspace.settings.edit_model_name()`` (``NULLSPACE_EDIT_MODEL``).

The loader also records the weights *as loaded* of the matrices the editors change (the FFN output
matrices): a fingerprint of every block's, and a copy of each one an editor asks for. Every editor
restores those, so one experiment never starts from another's edits (:func:`weights_as_loaded`).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub.constants as hub_constants
import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as transformers_logging

from nullspace.capture import weight_as_matrix
from nullspace.data_checksums import verify_shipped
from nullspace.editing import architectures
from nullspace.editing.spread import ffn_output
from nullspace.paths import DATA_DIR
from nullspace.settings import as_device, edit_model_name
from nullspace.settings import device as default_device

__all__ = ["COURSE_MODEL", "COURSE_MODEL_DIR", "ModelAlreadyEditedError", "ModelNotAvailableError", "edited_blocks",
           "load_model",
           "model_source", "record_loaded_weights", "restore_loaded_weights", "weights_as_loaded"]

COURSE_MODEL = "course-gpt2"
COURSE_MODEL_DIR = DATA_DIR / "course-gpt2"

_MEMORY_HINTS = {
    "gpt2-xl": "GPT-2 XL has 1.56 billion parameters: about 6.5 GB on disk and 7 GB of memory in float32 "
               "(ROME's demo edits it on an 8 GB GPU; collecting its key statistics takes hours).",
}


class ModelNotAvailableError(FileNotFoundError):
    """The requested model's files are not on this machine."""


class ModelAlreadyEditedError(RuntimeError):
    """An FFN output matrix differs from the loaded weights and no copy of those was kept."""


def model_source(name: str) -> str | Path:
    """What ``from_pretrained`` is given for ``name``: the shipped directory or the hub name."""
    return COURSE_MODEL_DIR if name == COURSE_MODEL else name


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Within the block the Hugging Face libraries make no network request at all.

    ``local_files_only=True`` covers the model files, but ``huggingface_hub`` still contacts the
    hub for other things (it fetches a registry to build its user agent); its offline switch,
    read at every request, stops those too.
    """
    previous = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = previous


def _check_course_model_files() -> None:
    if not COURSE_MODEL_DIR.is_dir():
        raise ModelNotAvailableError(
            f"the teaching model is missing from {COURSE_MODEL_DIR}. It ships with the course: restore it with "
            "`git checkout -- data/course-gpt2`, or retrain it with "
            "`python -m nullspace.editing.world.teaching_model --out data/course-gpt2`.")
    verify_shipped(COURSE_MODEL_DIR)


def _require_finite_weights(model: nn.Module, name: str) -> None:
    advice = ("restore them with `git checkout -- data/course-gpt2`" if name == COURSE_MODEL else
              "delete the model from the Hugging Face cache and fetch it again")
    for parameter_name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise ValueError(
                f"the weights of {name!r} contain NaN or infinite values (first in {parameter_name}); the files "
                f"are corrupted: {advice}.")


def load_model(name: str | None = None, device: torch.device | str | None = None,
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(model, tokenizer)`` for ``name`` (default: ``NULLSPACE_EDIT_MODEL``), in eval mode.

    Never touches the network: a hub model must already be in the local Hugging Face cache,
    otherwise a :class:`ModelNotAvailableError` says how to get it. The shipped model's files are
    checked against their recorded checksums. The tokenizer pads with its end-of-text token on
    the right (the course's batched readers pad on the right themselves in any case).

    Raises:
        ModelNotAvailableError: the model's files are not on this machine.
        nullspace.data_checksums.ShippedFileError: a shipped file is missing or modified.
        ValueError: the loaded weights hold NaN or infinite values.
    """
    name = name or edit_model_name()
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name such as 'course-gpt2' or 'gpt2-xl', got {type(name).__name__}.")
    source = model_source(name)
    if name == COURSE_MODEL:
        _check_course_model_files()
    bars_were_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # no "Loading weights" bar in lesson outputs
    try:
        with _hub_offline():
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
    _require_finite_weights(model, name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model.to(default_device() if device is None else as_device(device, "device")).eval()
    record_loaded_weights(model)
    return model, tokenizer


def _fingerprint(weight: torch.Tensor) -> str:
    data = weight.detach().contiguous().cpu()
    return hashlib.blake2b(data.view(torch.uint8).numpy().tobytes(), digest_size=16).hexdigest()


@dataclass
class _LoadedWeights:
    fingerprints: dict[int, str]
    copies: dict[int, torch.Tensor] = field(default_factory=dict)


_LOADED: weakref.WeakKeyDictionary[nn.Module, _LoadedWeights] = weakref.WeakKeyDictionary()


def _current(model: nn.Module, layer: int) -> torch.Tensor:
    return weight_as_matrix(ffn_output(model, layer))


def record_loaded_weights(model: nn.Module) -> None:
    """Record ``model``'s FFN output matrices as they are now as its *loaded* weights (a fingerprint
    of every block's; copies are taken on demand by :func:`weights_as_loaded`). :func:`load_model`
    calls it; call it yourself for a model built another way."""
    blocks = len(architectures.blocks(model))
    _LOADED[model] = _LoadedWeights({layer: _fingerprint(_current(model, layer)) for layer in range(blocks)})


def weights_as_loaded(model: nn.Module, layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """The FFN output matrices ``W`` (``(d_model, d_ff)``) of ``layers`` as they were loaded.

    For a model recorded by :func:`record_loaded_weights` (every model from :func:`load_model`),
    one copy per layer is kept and shared by every editor, taken the first time a layer is asked
    for, which must be while it still matches its loaded fingerprint. For any other model these
    are copies of the current weights.

    Raises:
        ModelAlreadyEditedError: a layer changed since loading before any copy of it was kept.
    """
    record = _LOADED.get(model)
    if record is None:
        return {layer: _current(model, layer).detach().clone() for layer in layers}
    for layer in layers:
        if layer in record.copies:
            continue
        current = _current(model, layer)
        if _fingerprint(current) != record.fingerprints[layer]:
            raise ModelAlreadyEditedError(
                f"block {layer}'s FFN output matrix was changed since the model was loaded, and no copy of the "
                "loaded weights was kept, so an editor could not restore them. Reset the editor that changed "
                "it (editor.reset()), or reload the model with load_model (prepare_workbench keeps copies of "
                "every layer its editors use).")
        record.copies[layer] = current.detach().clone()
    return {layer: record.copies[layer] for layer in layers}


def edited_blocks(model: nn.Module) -> list[int]:
    """The blocks whose FFN output matrix differs from the loaded weights (always empty for a
    model that was not recorded by :func:`record_loaded_weights`)."""
    record = _LOADED.get(model)
    if record is None:
        return []
    return [layer for layer, digest in record.fingerprints.items() if _fingerprint(_current(model, layer)) != digest]


@torch.no_grad()
def restore_loaded_weights(model: nn.Module) -> list[int]:
    """Copy the loaded weights back into every FFN output matrix of ``model`` that has a kept copy,
    and return the blocks that still differ from the loaded weights (:func:`edited_blocks`; empty:
    the model is as loaded)."""
    record = _LOADED.get(model)
    for layer, weight in ({} if record is None else record.copies).items():
        _current(model, layer).copy_(weight)
    return edited_blocks(model)
