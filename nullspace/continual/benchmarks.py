"""Task-incremental benchmarks: a sequence of tasks, each with its own classes and its own head.

Adam-NSCL (Wang et al., CVPR 2021, §5) evaluates in the task-incremental setting: task ``t``
brings new classes, the model gets a new linear head for them, and at test time the task
identity is known (the right head is used). Three benchmarks are offered:

* ``digits``: scikit-learn's 8×8 hand-written digits (real data, shipped with scikit-learn)
  split into 5 tasks of 2 classes;
* ``gratings``: a generated benchmark of 10 tasks of 2 classes of coloured, oriented gratings
  (3×16×16), made so that naive fine-tuning forgets a lot while a 5×5 colour convolution still
  sees 75-dimensional patches with room for a null space;
* ``cifar100``: the paper's 10-split CIFAR-100 (10 tasks of 10 classes), read from the standard
  python-pickle files in a folder you provide (for users with the data and a GPU).

Labels are re-numbered inside each task (``0 .. classes_per_task - 1``).
"""

from __future__ import annotations

import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nullspace.paths import DATA_DIR
from nullspace.settings import cl_benchmark_name

__all__ = [
    "BENCHMARK_NAMES",
    "Benchmark",
    "Task",
    "cifar100_dir",
    "colour_gratings",
    "load_benchmark",
    "split_cifar100",
    "split_digits",
]

BENCHMARK_NAMES = ("digits", "gratings", "cifar100")
CIFAR100_DIR_VARIABLE = "NULLSPACE_CIFAR100_DIR"


@dataclass(frozen=True)
class Task:
    """One task: its classes (original labels) and train/test tensors with per-task labels."""

    index: int
    classes: tuple[int, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    @property
    def name(self) -> str:
        return f"task {self.index + 1} (classes {', '.join(map(str, self.classes))})"


@dataclass(frozen=True)
class Benchmark:
    """A named sequence of tasks that share an input shape and a number of classes per task."""

    name: str
    tasks: tuple[Task, ...]
    input_shape: tuple[int, int, int]
    classes_per_task: int

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def subset(self, num_tasks: int) -> Benchmark:
        """The first ``num_tasks`` tasks only (for quick runs)."""
        if not 1 <= num_tasks <= self.num_tasks:
            raise ValueError(f"num_tasks must lie in 1..{self.num_tasks}, got {num_tasks}.")
        return Benchmark(self.name, self.tasks[:num_tasks], self.input_shape, self.classes_per_task)


def _split_by_classes(
    x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    class_order: list[int], classes_per_task: int,
) -> tuple[Task, ...]:
    if len(class_order) % classes_per_task:
        raise ValueError(f"{len(class_order)} classes do not split into tasks of {classes_per_task}.")
    tasks = []
    for index in range(len(class_order) // classes_per_task):
        classes = class_order[index * classes_per_task:(index + 1) * classes_per_task]
        relabel = {c: i for i, c in enumerate(classes)}
        train_mask = torch.isin(y, torch.tensor(classes))
        test_mask = torch.isin(test_y, torch.tensor(classes))
        tasks.append(Task(
            index=index,
            classes=tuple(classes),
            train_x=x[train_mask],
            train_y=torch.tensor([relabel[int(c)] for c in y[train_mask]], dtype=torch.long),
            test_x=test_x[test_mask],
            test_y=torch.tensor([relabel[int(c)] for c in test_y[test_mask]], dtype=torch.long),
        ))
    return tuple(tasks)


def split_digits(seed: int = 0, test_fraction: float = 0.3) -> Benchmark:
    """scikit-learn's digits as 5 tasks of 2 classes ((0, 1), (2, 3), …), 1×8×8 inputs in [0, 1].

    The train/test split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    train_x, test_x, train_y, test_y = train_test_split(
        images, digits.target, test_size=test_fraction, random_state=seed, stratify=digits.target)
    as_x = lambda a: torch.from_numpy(a).unsqueeze(1)
    tasks = _split_by_classes(as_x(train_x), torch.from_numpy(train_y), as_x(test_x),
                              torch.from_numpy(test_y), list(range(10)), 2)
    return Benchmark("split-digits", tasks, (1, 8, 8), 2)


def _grating_images(
    rng: np.random.Generator, n: int, angle: float, frequency: float, colour: np.ndarray,
    size: int, noise: float, distractor_amplitude: float,
) -> np.ndarray:
    """``n`` images of one class: a coloured grating with random phase, small jitter of angle and
    frequency, a random distractor grating, and Gaussian noise (shape ``(n, 3, size, size)``)."""
    coords = np.arange(size, dtype=np.float64) - (size - 1) / 2
    yy, xx = np.meshgrid(coords, coords, indexing="ij")

    def wave(angles: np.ndarray, freqs: np.ndarray, phases: np.ndarray) -> np.ndarray:
        direction = (np.cos(angles)[:, None, None] * xx + np.sin(angles)[:, None, None] * yy)
        return np.sin(2 * math.pi * freqs[:, None, None] * direction + phases[:, None, None])

    signal = wave(angle + rng.normal(0, 0.08, n), frequency * (1 + rng.normal(0, 0.05, n)),
                  rng.uniform(0, 2 * math.pi, n))
    distractor = wave(rng.uniform(0, math.pi, n), rng.uniform(0.08, 0.3, n), rng.uniform(0, 2 * math.pi, n))
    distractor_colour = rng.dirichlet(np.ones(3), n)
    images = (signal[:, None] * colour[None, :, None, None]
              + distractor_amplitude * distractor[:, None] * distractor_colour[:, :, None, None]
              + noise * rng.standard_normal((n, 3, size, size)))
    return images.astype(np.float32)


def colour_gratings(
    num_tasks: int = 10, train_per_class: int = 200, test_per_class: int = 100, size: int = 16,
    noise: float = 0.3, distractor_amplitude: float = 0.6, seed: int = 0,
) -> Benchmark:
    """A generated benchmark of ``num_tasks`` tasks of 2 classes, 3×size×size coloured gratings.

    Each task has its own colour; its two classes are gratings of that colour with different
    orientations (30° to 150° apart) and spatial frequencies, under a randomly oriented and
    coloured distractor grating and pixel noise. Every task needs orientation detectors for its
    own colour, so fine-tuning the shared layers on later tasks overwrites earlier ones. The
    classes are drawn from ``seed``.
    """
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be positive, got {num_tasks}.")
    rng = np.random.default_rng(seed)
    train_x, train_y, test_x, test_y = [], [], [], []
    for task in range(num_tasks):
        colour = rng.dirichlet(np.ones(3)) * 1.5          # one colour per task: classes differ in shape
        first_angle = rng.uniform(0, math.pi)
        angles = (first_angle, first_angle + rng.uniform(math.pi / 6, 5 * math.pi / 6))
        for label, angle in zip((2 * task, 2 * task + 1), angles):
            frequency = rng.uniform(0.1, 0.3)
            for xs, ys, n in ((train_x, train_y, train_per_class), (test_x, test_y, test_per_class)):
                xs.append(_grating_images(rng, n, angle, frequency, colour, size, noise, distractor_amplitude))
                ys.append(np.full(n, label))
    as_tensor = lambda parts: torch.from_numpy(np.concatenate(parts))
    tasks = _split_by_classes(as_tensor(train_x), as_tensor(train_y).long(), as_tensor(test_x),
                              as_tensor(test_y).long(), list(range(2 * num_tasks)), 2)
    return Benchmark("colour-gratings", tasks, (3, size, size), 2)


def cifar100_dir() -> Path:
    """The folder holding CIFAR-100's ``train`` and ``test`` pickles: ``$NULLSPACE_CIFAR100_DIR``,
    else ``data/cifar-100-python``."""
    return Path(os.environ.get(CIFAR100_DIR_VARIABLE, DATA_DIR / "cifar-100-python"))


def _read_cifar_pickle(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with path.open("rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    try:
        data, labels = batch[b"data"], batch[b"fine_labels"]
    except KeyError as err:
        raise ValueError(f"{path} is not a CIFAR-100 python pickle: it has no {err} entry.") from err
    images = torch.from_numpy(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
    return images, torch.tensor(labels, dtype=torch.long)


CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def split_cifar100(directory: Path | str | None = None, num_tasks: int = 10) -> Benchmark:
    """The paper's 10-split CIFAR-100: ``num_tasks`` tasks of ``100 / num_tasks`` classes, in the
    natural class order, inputs normalised with the usual per-channel mean and std.

    Reads ``train`` and ``test`` from ``directory`` (default :func:`cifar100_dir`), the files of
    the "CIFAR-100 python version" archive.
    """
    folder = Path(directory) if directory is not None else cifar100_dir()
    missing = [name for name in ("train", "test") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-100 files {missing} not found in {folder}. Download 'CIFAR-100 python version' "
            "(cifar-100-python.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it, "
            f"and point {CIFAR100_DIR_VARIABLE} at the cifar-100-python folder (it holds 'train', "
            "'test' and 'meta').")
    if 100 % num_tasks:
        raise ValueError(f"100 classes do not split into {num_tasks} equal tasks.")
    mean = torch.tensor(CIFAR100_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR100_STD).view(1, 3, 1, 1)
    (train_images, train_y), (test_images, test_y) = (_read_cifar_pickle(folder / n) for n in ("train", "test"))
    normalise = lambda images: (images.float() / 255.0 - mean) / std
    tasks = _split_by_classes(normalise(train_images), train_y, normalise(test_images), test_y,
                              list(range(100)), 100 // num_tasks)
    return Benchmark(f"{num_tasks}-split CIFAR-100", tasks, (3, 32, 32), 100 // num_tasks)


def load_benchmark(name: str | None = None, seed: int = 0) -> Benchmark:
    """The benchmark called ``name`` (default: ``nullspace.settings.cl_benchmark_name()``)."""
    name = name or cl_benchmark_name()
    if name == "digits":
        return split_digits(seed=seed)
    if name == "gratings":
        return colour_gratings(seed=seed)
    if name == "cifar100":
        return split_cifar100()
    raise ValueError(f"unknown benchmark {name!r}: choose one of {', '.join(BENCHMARK_NAMES)} "
                     "(NULLSPACE_CL_BENCHMARK).")
