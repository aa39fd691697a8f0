"""The paper's 10-split CIFAR-100, read safely from the official python files.

The "CIFAR-100 python version" archive (https://www.cs.toronto.edu/~kriz/cifar.html) holds the
files ``train``, ``test`` and ``meta``: Python pickles of a dict whose entries are byte strings,
lists of integers and one ``uint8`` array (``b"data"``, shape ``(n, 3072)``, channel-major
``32 × 32`` images). A pickle can name any Python function to call while it loads, so
``pickle.load`` on a file someone handed you runs whatever code that file names. This loader
uses a restricted unpickler that resolves only what an array in those files needs (NumPy's array
reconstructor, ``numpy.ndarray`` and a ``numpy.dtype`` without Python objects) and refuses
everything else before it is called; it then checks the entries' types, shapes and label range.
"""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nullspace.continual.benchmarks import Benchmark, split_by_classes
from nullspace.paths import DATA_DIR

__all__ = ["CIFAR100_DIR_VARIABLE", "cifar100_dir", "read_cifar100_file", "split_cifar100"]

CIFAR100_DIR_VARIABLE = "NULLSPACE_CIFAR100_DIR"
# the official Adam-NSCL code's normalisation (dataloaders/base.py)
CIFAR100_MEAN = (0.507, 0.487, 0.441)
CIFAR100_STD = (0.267, 0.256, 0.276)
DOWNLOAD_ADVICE = ("Download 'CIFAR-100 python version' (cifar-100-python.tar.gz) from "
                   "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it, and point "
                   f"{CIFAR100_DIR_VARIABLE} at the cifar-100-python folder (it holds 'train', 'test' "
                   "and 'meta').")


def cifar100_dir() -> Path:
    """The folder holding CIFAR-100's ``train`` and ``test`` pickles: ``$NULLSPACE_CIFAR100_DIR``,
    else ``data/cifar-100-python``."""
    return Path(os.environ.get(CIFAR100_DIR_VARIABLE, DATA_DIR / "cifar-100-python"))


class _Refused(pickle.UnpicklingError):
    """A pickle asked for something the official files never hold."""


def _plain_dtype(spec: Any, align: bool = False, copy: bool = True) -> np.dtype:
    dtype = np.dtype(spec, align, copy)
    if dtype.hasobject:
        raise _Refused("it asks for an array of Python objects")
    return dtype


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    # how Python 3 writes a byte string at pickle protocol 2; nothing else is allowed
    if encoding != "latin1":
        raise _Refused(f"it asks for a byte string in encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _array_globals() -> dict[tuple[str, str], Any]:
    from numpy._core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _plain_dtype,
                                           ("_codecs", "encode"): _latin1}
    for package in ("numpy.core", "numpy._core"):   # NumPy 1 and NumPy 2 spell the module differently
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, strings, numbers and plain NumPy arrays, and refuses
    every other global a pickle asks for (before anything is called)."""

    allowed = _array_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise _Refused(f"it asks for {module}.{name}") from None


def _refuse(path: Path, why: str) -> ValueError:
    return ValueError(f"{path} is not a CIFAR-100 python file: {why}. It was not loaded. {DOWNLOAD_ADVICE}")


def read_cifar100_file(path: Path | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(n, 3, 32, 32)`` as ``uint8`` and fine labels ``(n,)`` from a ``train`` or ``test``
    file of the official archive, loaded without running code the file might name.

    Raises:
        ValueError: the file is not a pickle of the official format (it names a function or class
            other than NumPy's array reconstruction, or an entry is missing, of the wrong type or
            shape, or a label lies outside 0..99). Nothing in such a file is executed.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            batch = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except _Refused as err:
        raise _refuse(path, f"{err}, which that format never holds") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
        raise _refuse(path, f"it is truncated or not a pickle ({type(err).__name__}: {err})") from None
    if not isinstance(batch, dict):
        raise _refuse(path, f"it holds a {type(batch).__name__}, not a dict")
    missing = [key.decode() for key in (b"data", b"fine_labels") if key not in batch]
    if missing:
        raise _refuse(path, f"it has no {', '.join(missing)} entry")
    data, labels = batch[b"data"], batch[b"fine_labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        what = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise _refuse(path, f"its data entry is a {what}, not a uint8 array of shape (n, 3072)")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(y) is int for y in labels):
        raise _refuse(path, f"its fine_labels entry is not a list of {len(data)} integers")
    if labels and not 0 <= min(labels) <= max(labels) < 100:
        raise _refuse(path, f"its fine labels span {min(labels)}..{max(labels)}, not 0..99")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32))
    return images, torch.tensor(labels, dtype=torch.long)


def split_cifar100(directory: Path | str | None = None, num_tasks: int = 10) -> Benchmark:
    """The paper's 10-split CIFAR-100: ``num_tasks`` tasks of ``100 / num_tasks`` classes in the
    natural class order, inputs normalised per channel as the official code does.

    Reads ``train`` and ``test`` from ``directory`` (default :func:`cifar100_dir`) with
    :func:`read_cifar100_file`. Raises ``FileNotFoundError`` (saying where to get the files) when
    they are missing, ``ValueError`` when ``num_tasks`` does not divide 100 or a file is not in
    the official format.
    """
    if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1 or 100 % num_tasks:
        raise ValueError(f"num_tasks must be a positive integer that divides the 100 classes (2, 5, 10, "
                         f"20, …), got {num_tasks!r}. The paper uses 10 and 20.")
    folder = Path(directory) if directory is not None else cifar100_dir()
    missing = [name for name in ("train", "test") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-100 files {missing} not found in {folder}. {DOWNLOAD_ADVICE}")
    mean = torch.tensor(CIFAR100_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR100_STD).view(1, 3, 1, 1)
    (train_images, train_y), (test_images, test_y) = (read_cifar100_file(folder / n) for n in ("train", "test"))
    normalise = lambda images: (images.float() / 255.0 - mean) / std
    tasks = split_by_classes(normalise(train_images), train_y, normalise(test_images), test_y,
                             list(range(100)), 100 // num_tasks)
    return Benchmark(f"{num_tasks}-split CIFAR-100", tasks, (3, 32, 32), 100 // num_tasks)
