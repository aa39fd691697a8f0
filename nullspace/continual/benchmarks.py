"""Task-incremental benchmarks: a sequence of tasks, each with its own classes and its own head.

Adam-NSCL (Wang et al., CVPR 2021, §5) evaluates in the task-incremental setting: task ``t``
brings new classes, the model gets a new linear head for them, and at test time the task
identity is known (the right head is used). Five benchmarks are offered:

* ``digits``: scikit-learn's 8×8 hand-written digits (real data, shipped with scikit-learn)
  split into 5 tasks of 2 classes;
* ``gratings``: a generated benchmark of 10 tasks of 2 classes of coloured, oriented gratings
  (3×16×16), made so that naive fine-tuning forgets a lot while a 5×5 colour convolution still
  sees 75-dimensional patches with room for a null space;
* ``scrambled``: 20 tasks that each show the ten digits through their own scrambled, noisy
  16×16 sensor, so that the tasks' inputs come from different distributions (a harder cousin
  of permuted MNIST, where distillation on new inputs and quadratic penalties fall short);
* ``mixed``: the same digits, but each task's sensor mixes the 64 pixels into all 256 readings
  (a random orthonormal embedding), so that every task's inputs fill their own random
  64-dimensional subspace of the readings rather than their own quarter of the pixels: what is
  safe to change in a layer is then a set of directions, not a set of weights;
* ``cifar100``: the paper's 10-split CIFAR-100 (10 tasks of 10 classes), read from the official
  python files in a folder you provide (:mod:`nullspace.continual.cifar100`; for a GPU).

Labels are re-numbered inside each task (``0 .. classes_per_task - 1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nullspace.continual.arguments import check_fraction, check_int, check_number
from nullspace.settings import cl_benchmark_name

__all__ = [
    "BENCHMARK_NAMES",
    "Benchmark",
    "Task",
    "colour_gratings",
    "load_benchmark",
    "mixed_digits",
    "scrambled_digits",
    "split_by_classes",
    "split_digits",
]

BENCHMARK_NAMES = ("digits", "gratings", "scrambled", "mixed", "cifar100")


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
        check_int(num_tasks, "num_tasks")
        if num_tasks > self.num_tasks:
            raise ValueError(f"num_tasks must lie in 1..{self.num_tasks} (the benchmark has {self.num_tasks} "
                             f"tasks), got {num_tasks}.")
        return Benchmark(self.name, self.tasks[:num_tasks], self.input_shape, self.classes_per_task)


def split_by_classes(
    x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    class_order: list[int], classes_per_task: int,
) -> tuple[Task, ...]:
    """Tasks of ``classes_per_task`` consecutive classes of ``class_order``, labels re-numbered."""
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


def _digit_split(seed: int, test_fraction: float) -> list[np.ndarray]:
    """scikit-learn's 1797 digits (8×8 in [0, 1]) split into train and test, stratified by class."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_int(seed, "seed", minimum=0)
    if not 0 < check_fraction(test_fraction, "test_fraction") < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}: it is the "
                         "share of the digits kept for testing (0.3 by default).")
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0
    return train_test_split(images, digits.target, test_size=test_fraction, random_state=seed,
                            stratify=digits.target)


def split_digits(seed: int = 0, test_fraction: float = 0.3) -> Benchmark:
    """scikit-learn's digits as 5 tasks of 2 classes ((0, 1), (2, 3), …), 1×8×8 inputs in [0, 1].

    The train/test split is stratified and fixed by ``seed``.
    """
    train_x, test_x, train_y, test_y = _digit_split(seed, test_fraction)
    as_x = lambda a: torch.from_numpy(a).unsqueeze(1)
    tasks = split_by_classes(as_x(train_x), torch.from_numpy(train_y), as_x(test_x),
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
    check_int(num_tasks, "num_tasks")
    check_int(train_per_class, "train_per_class")
    check_int(test_per_class, "test_per_class")
    check_int(size, "size", minimum=4, hint="The course CNN pools twice, so use a multiple of 4 (16 by default).")
    check_number(noise, "noise")
    check_number(distractor_amplitude, "distractor_amplitude")
    check_int(seed, "seed", minimum=0)
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
    tasks = split_by_classes(as_tensor(train_x), as_tensor(train_y).long(), as_tensor(test_x),
                              as_tensor(test_y).long(), list(range(2 * num_tasks)), 2)
    return Benchmark("colour-gratings", tasks, (3, size, size), 2)


def _sensor_readings(images: np.ndarray, embedding: np.ndarray, noise: float, rng: np.random.Generator,
                     side: int) -> torch.Tensor:
    """Each 8×8 image's 64 pixels through a sensor, ``embedding @ pixels`` (``side² × 64``), plus
    fresh Gaussian noise of standard deviation ``noise`` on every reading."""
    readings = noise * rng.standard_normal((len(images), side * side))
    readings += images.reshape(len(images), 64) @ embedding.T
    return torch.from_numpy(readings.astype(np.float32)).view(-1, 1, side, side)


def _sensor_benchmark(name: str, sensor: str, num_tasks: int, sensor_side: int, noise: float, seed: int,
                      test_fraction: float) -> Benchmark:
    """Every task: the same digits, through its own sensor drawn from ``seed`` (``"scrambled"``:
    a random injection of the 64 pixels into the readings; ``"mixed"``: a random orthonormal
    embedding)."""
    check_int(num_tasks, "num_tasks")
    check_int(sensor_side, "sensor_side", minimum=8, hint="The sensor must hold the 64 pixels of a digit (8 × 8).")
    check_number(noise, "noise")
    train_x, test_x, train_y, test_y = _digit_split(seed, test_fraction)
    readings = sensor_side * sensor_side
    rng = np.random.default_rng(seed)
    tasks = []
    for index in range(num_tasks):
        if sensor == "scrambled":
            embedding = np.zeros((readings, 64))
            embedding[rng.permutation(readings)[:64], np.arange(64)] = 1.0
        else:
            q, r = np.linalg.qr(rng.standard_normal((readings, 64)))
            embedding = q * np.sign(np.diag(r))      # Haar-distributed orthonormal columns
        sense = lambda images, embedding=embedding: _sensor_readings(images, embedding, noise, rng, sensor_side)
        tasks.append(Task(index=index, classes=tuple(range(10)), train_x=sense(train_x),
                          train_y=torch.from_numpy(train_y).long(), test_x=sense(test_x),
                          test_y=torch.from_numpy(test_y).long()))
    return Benchmark(name, tuple(tasks), (1, sensor_side, sensor_side), 10)


def scrambled_digits(num_tasks: int = 20, sensor_side: int = 16, noise: float = 0.02, seed: int = 0,
                     test_fraction: float = 0.3) -> Benchmark:
    """``num_tasks`` tasks that each show the ten digits through their own scrambled sensor.

    A sensor has ``sensor_side²`` pixels (256 by default). Task ``t`` draws, from ``seed``, which
    64 of them carry the 64 pixels of an 8×8 digit and in what order (a random injection); the
    other sensor pixels carry nothing but noise, and every sensor pixel gets Gaussian noise of
    standard deviation ``noise`` (fresh for every image). Every task is 10-way classification of
    the same digits (scikit-learn's, split once by ``seed``), but a sensor pixel that holds the
    top of the digit in one task holds another part, or nothing, in the next: the tasks' inputs
    come from different distributions that overlap on about a quarter of their pixels. It is
    permuted MNIST on a larger, noisy sensor, so that each task fills only part of the input
    space and the noise gives every layer's input covariance a floor (what the paper's
    ``a·λ_min`` rule needs to tell "zero" from signal).

    Inputs have shape ``(1, sensor_side, sensor_side)``; ``Task.classes`` is ``(0, …, 9)`` for
    every task.
    """
    return _sensor_benchmark("scrambled-digits", "scrambled", num_tasks, sensor_side, noise, seed, test_fraction)


def mixed_digits(num_tasks: int = 20, sensor_side: int = 16, noise: float = 0.02, seed: int = 0,
                 test_fraction: float = 0.3) -> Benchmark:
    """``num_tasks`` tasks that each show the ten digits through their own mixing sensor.

    As :func:`scrambled_digits`, except that task ``t``'s sensor writes the 64 pixels of a digit
    into all ``sensor_side²`` readings through its own random matrix ``Q_t`` with orthonormal
    columns (drawn from ``seed``; readings ``= Q_t · pixels + noise``). A scrambled sensor is the
    special case where ``Q_t``'s columns are 64 distinct unit vectors of the pixel basis. Each
    task's inputs fill their own random 64-dimensional subspace of the readings, so every first-
    layer weight carries signal in every task, and the changes that leave an old task's inputs
    alone are combinations of weights (its null space), not individual weights: what EWC's
    diagonal penalty cannot express and a null-space projection does. Distances and the
    covariance's spectrum are those of the scrambled sensor (``Q_t`` is orthonormal).

    Inputs have shape ``(1, sensor_side, sensor_side)``; ``Task.classes`` is ``(0, …, 9)``.
    """
    return _sensor_benchmark("mixed-digits", "mixed", num_tasks, sensor_side, noise, seed, test_fraction)


def load_benchmark(name: str | None = None, seed: int = 0) -> Benchmark:
    """The benchmark called ``name`` (default: ``nullspace.settings.cl_benchmark_name()``)."""
    name = name or cl_benchmark_name()
    if name == "digits":
        return split_digits(seed=seed)
    if name == "gratings":
        return colour_gratings(seed=seed)
    if name == "scrambled":
        return scrambled_digits(seed=seed)
    if name == "mixed":
        return mixed_digits(seed=seed)
    if name == "cifar100":
        from nullspace.continual.cifar100 import split_cifar100

        return split_cifar100()
    raise ValueError(f"unknown benchmark {name!r}: choose one of {', '.join(BENCHMARK_NAMES)} "
                     "(NULLSPACE_CL_BENCHMARK).")
