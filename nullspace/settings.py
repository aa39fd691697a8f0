"""Course-wide settings, read once from environment variables.

Every notebook and command reads its switches from here, so one setting moves the whole course
from the small offline defaults to the papers' real setting:

* ``NULLSPACE_EDIT_MODEL``: ``course-gpt2`` (default: the small GPT-2 shipped in ``data/``) or a
  Hugging Face name such as ``gpt2-xl`` (weights must already be in the local Hugging Face cache).
* ``NULLSPACE_CL_BENCHMARK``: ``digits`` (default) or ``cifar100`` (needs the CIFAR-100 files).
* ``NULLSPACE_CIFAR100_DIR``: the folder holding CIFAR-100's python files (``train``, ``test``,
  ``meta``); default ``data/cifar-100-python``.
* ``NULLSPACE_DEVICE``: ``cpu`` (default when no GPU) or ``cuda``.
* ``NULLSPACE_PROGRESS``: ``1`` (default) shows progress bars; ``0`` hides them (tests, builds).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch
from tqdm import tqdm

__all__ = ["as_device", "cl_benchmark_name", "device", "edit_model_name", "progress", "progress_enabled"]

T = TypeVar("T")


def edit_model_name() -> str:
    """The language model the editing lessons use (``NULLSPACE_EDIT_MODEL``)."""
    return os.environ.get("NULLSPACE_EDIT_MODEL", "course-gpt2")


def cl_benchmark_name() -> str:
    """The continual-learning benchmark of the CIFAR path (``NULLSPACE_CL_BENCHMARK``)."""
    return os.environ.get("NULLSPACE_CL_BENCHMARK", "digits")


DEVICE_VARIABLE = "NULLSPACE_DEVICE"
_DEVICE_CHOICES = "'cpu', 'cuda', 'cuda:N' (N a GPU index) or 'mps'"


def as_device(name: str | torch.device, setting: str) -> torch.device:
    """``name`` as a ``torch.device`` this machine has; ``setting`` names where it came from.

    Raises:
        ValueError: not a device name, or a GPU this machine does not have, naming ``setting``,
            the valid values and what is available.
    """
    available = "cpu" + (f", cuda (GPUs 0..{torch.cuda.device_count() - 1})" if torch.cuda.is_available() else "")
    if isinstance(name, torch.device):
        parsed = name
    else:
        try:
            parsed = torch.device(str(name).strip().lower())
        except (RuntimeError, ValueError):
            raise ValueError(f"{setting}={name!r} is not a device: use {_DEVICE_CHOICES}; this machine has "
                             f"{available}.") from None
    if parsed.type not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"{setting}={name!r} is not supported by the course: use {_DEVICE_CHOICES}; this "
                         f"machine has {available}.")
    if parsed.type == "cuda" and (not torch.cuda.is_available()
                                  or (parsed.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"{setting}={name!r}, but this machine has no such CUDA GPU ({available}). "
                         f"Set {setting}=cpu or leave it unset.")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{setting}={name!r}, but Apple's MPS backend is not available here ({available}). "
                         f"Set {setting}=cpu or leave it unset.")
    return parsed


def device() -> torch.device:
    """``NULLSPACE_DEVICE`` if set, else CUDA when available, else the CPU.

    Raises:
        ValueError: ``NULLSPACE_DEVICE`` is not a device of this machine (a typo, a missing GPU).
    """
    name = os.environ.get(DEVICE_VARIABLE, "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return as_device(name, DEVICE_VARIABLE)


def progress_enabled() -> bool:
    """Whether progress bars are shown (``NULLSPACE_PROGRESS``, default on)."""
    return os.environ.get("NULLSPACE_PROGRESS", "1") not in {"0", "false", "False", ""}


def progress(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar unless progress bars are switched off."""
    return iter(tqdm(iterable, disable=not progress_enabled(), **kwargs))
