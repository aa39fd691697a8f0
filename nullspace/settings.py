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
* ``NULLSPACE_CACHE_DIR``: where computed statistics (``C0`` per model and layer) are cached.
  Default: ``data/cache`` in the course folder when it is writable, else the user's cache folder
  (``$XDG_CACHE_HOME/nullspace-course``, i.e. ``~/.cache/nullspace-course``), so a read-only
  checkout still keeps hours of GPT-2 XL statistics.
* ``NULLSPACE_DATA_DIR``: the folder holding your own copies of the papers' data (CounterFact,
  multi-CounterFact, ZsRE, attribute snippets, IDF statistics, a corpus for ``C0``); see
  :mod:`nullspace.editing.official_data`. Never downloaded by the course.
* ``NULLSPACE_THREADS``: the number of CPU threads torch uses (a positive integer); unset, torch
  keeps its own default (one per core). It is applied once, when the package is first imported
  (``import nullspace`` calls :func:`apply_threads`): every lesson's setup cell, every test and
  every benchmark imports ``nullspace`` before it computes. The Makefile sets it for the tests;
  a lesson's stored outputs do not depend on it (CONTRIBUTING.md, "Portable outputs").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import torch
from tqdm import tqdm

__all__ = ["apply_threads", "as_device", "cache_dir", "cl_benchmark_name", "data_dir", "device", "edit_model_name",
           "progress", "progress_enabled", "threads", "user_cache_dir"]

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


def threads() -> int | None:
    """``NULLSPACE_THREADS`` as a positive integer, or ``None`` when it is unset or empty.

    Raises ``ValueError`` naming the setting when it is not a positive integer.
    """
    text = os.environ.get("NULLSPACE_THREADS", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"NULLSPACE_THREADS must be a positive integer (the number of CPU threads torch uses), "
                         f"got {text!r}; set it to e.g. 1 or 4, or unset it to keep torch's default")
    return int(text)


def apply_threads() -> int:
    """Set torch's CPU thread count from ``NULLSPACE_THREADS`` if it is set; return the count in use."""
    count = threads()
    if count is not None and torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return torch.get_num_threads()


def progress_enabled() -> bool:
    """Whether progress bars are shown (``NULLSPACE_PROGRESS``, default on)."""
    return os.environ.get("NULLSPACE_PROGRESS", "1") not in {"0", "false", "False", ""}


def progress(iterable: Iterable[T], **kwargs) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar unless progress bars are switched off."""
    return iter(tqdm(iterable, disable=not progress_enabled(), **kwargs))


def user_cache_dir() -> Path:
    """The user's own cache folder for the course: ``$XDG_CACHE_HOME/nullspace-course``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nullspace-course"


def _writable(folder: Path) -> bool:
    """Whether ``folder`` exists and is writable, or can be created."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    return probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)


def cache_dir() -> Path:
    """Where computed statistics are cached (``NULLSPACE_CACHE_DIR``; see the module docstring)."""
    chosen = os.environ.get("NULLSPACE_CACHE_DIR")
    if chosen:
        return Path(chosen).expanduser()
    from nullspace.paths import DATA_DIR

    course_cache = DATA_DIR / "cache"
    return course_cache if _writable(course_cache) else user_cache_dir()


def data_dir() -> Path | None:
    """The folder of the user's own copies of the papers' data (``NULLSPACE_DATA_DIR``), or None."""
    chosen = os.environ.get("NULLSPACE_DATA_DIR")
    return Path(chosen).expanduser() if chosen else None
