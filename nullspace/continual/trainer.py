"""One trainer for every method: trains a task sequence and records what the lessons plot.

For each task ``t`` the trainer freezes the earlier heads, asks the method for a fresh optimizer,
trains for a fixed number of epochs on cross-entropy plus the method's penalty, and then fills row
``t`` of the accuracy matrix ``R``. At the end of every epoch it also records the test loss of the
first tasks (the paper's Fig. 6: loss on earlier tasks while later ones train) and it times the
training steps (forward, backward, optimizer step).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nullspace.continual.arguments import check_choice, check_int, check_number
from nullspace.continual.benchmarks import Benchmark, Task
from nullspace.continual.methods.base import ContinualMethod
from nullspace.continual.metrics import summarise
from nullspace.continual.models import ContinualModel
from nullspace.settings import device, progress

__all__ = ["RunResult", "TrainConfig", "crop_flip", "evaluate", "seed_everything", "train_sequence"]


AUGMENTATIONS = ("none", "crop-flip")


@dataclass(frozen=True)
class TrainConfig:
    """How long and in what batches every task is trained.

    ``lr_milestones``/``lr_gamma``: multiply every learning rate by ``lr_gamma`` at these epochs
    of each task (the official CIFAR recipe: 30 and 60, γ 0.5; none by default).
    ``augmentation``: ``"crop-flip"`` pads by 4 pixels, crops back at a random offset and flips
    half of the images left–right, as the official CIFAR loader does; ``"none"`` by default.
    ``freeze_statistics_after_first_task``: the running statistics of every normalisation layer
    stop moving after task 1, for every method (their parameters are left to the method).
    Otherwise they follow whichever task is being trained, as in the official code, and move
    every old task's outputs: on tasks whose inputs come from different distributions that
    alone makes every method forget.
    """

    epochs: int = 20
    batch_size: int = 32
    seed: int = 0
    tracked_tasks: int = 3     # test losses recorded for the first tasks after every epoch
    eval_batch_size: int = 512
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.5
    augmentation: str = "none"
    freeze_statistics_after_first_task: bool = False

    def __post_init__(self) -> None:
        check_int(self.epochs, "epochs", hint="It is the number of passes over each task's training data.")
        check_int(self.batch_size, "batch_size", hint="It is the number of samples per training step (32 in the course).")
        check_int(self.seed, "seed", minimum=0)
        check_int(self.tracked_tasks, "tracked_tasks", minimum=0)
        check_int(self.eval_batch_size, "eval_batch_size")
        for milestone in self.lr_milestones:
            check_int(milestone, "each of lr_milestones", hint="They are epochs of a task, e.g. (30, 60).")
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)):
            raise ValueError(f"lr_milestones must be increasing epochs without repeats, got {self.lr_milestones}.")
        check_number(self.lr_gamma, "lr_gamma", positive=True, hint="The official recipe halves the rate (0.5).")
        check_choice(self.augmentation, "augmentation", AUGMENTATIONS)


@dataclass
class RunResult:
    """What one run of a method over a benchmark produced."""

    method: str
    benchmark: str
    seed: int
    accuracy: np.ndarray                              # R[i, j] in %, NaN above the diagonal
    loss_curves: dict[int, list[tuple[float, float]]]  # task -> [(epochs so far, test loss)]
    step_seconds: list[float]                          # mean training-step time per task
    seconds: float
    epochs: int

    @property
    def metrics(self) -> dict[str, float]:
        return summarise(self.accuracy)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: ContinualModel, task: Task, batch_size: int = 512) -> tuple[float, float]:
    """Accuracy (%) and mean cross-entropy of ``model`` on ``task``'s test set (its own head)."""
    was_training = model.training
    model.eval()
    where = next(model.parameters()).device
    correct, loss = 0, 0.0
    for start in range(0, len(task.test_x), batch_size):
        x = task.test_x[start:start + batch_size].to(where)
        y = task.test_y[start:start + batch_size].to(where)
        logits = model(x, task.index)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    return 100.0 * correct / len(task.test_y), loss / len(task.test_y)


def crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """A random crop of each image padded by ``padding`` zeros, flipped left–right with
    probability ½ (torchvision's ``RandomCrop(size, padding=4)`` and ``RandomHorizontalFlip``)."""
    n, _, height, width = x.shape
    padded = F.pad(x, (padding,) * 4)
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        image = padded[i, :, dy:dy + height, dx:dx + width]
        out[i] = image.flip(-1) if flips[i] else image
    return out


def _freeze_earlier_heads(model: ContinualModel, task_index: int) -> None:
    for j, head in enumerate(model.heads):
        head.requires_grad_(j == task_index)


def train_sequence(
    benchmark: Benchmark,
    method: ContinualMethod,
    model_factory: Callable[[], ContinualModel],
    config: TrainConfig = TrainConfig(),
) -> tuple[RunResult, ContinualModel]:
    """Train ``method`` on every task of ``benchmark`` in order; return the record and the model.

    Everything is seeded from ``config.seed``: the model's initialisation (``model_factory`` is
    called after seeding) and the order of the mini-batches. The model trains on
    ``nullspace.settings.device()`` (the GPU when there is one, unless ``NULLSPACE_DEVICE`` says
    otherwise); the benchmark's tensors stay where they are and batches are moved.
    """
    seed_everything(config.seed)
    where = device()
    model = model_factory().to(where)
    order = torch.Generator().manual_seed(config.seed)
    num_tasks = benchmark.num_tasks
    accuracy = np.full((num_tasks, num_tasks), np.nan)
    tracked = range(min(config.tracked_tasks, num_tasks))
    loss_curves: dict[int, list[tuple[float, float]]] = {j: [] for j in tracked}
    step_seconds: list[float] = []
    start_time = time.perf_counter()
    bar = progress(range(num_tasks * config.epochs), desc=f"{method.name} on {benchmark.name}")
    epoch_counter = iter(bar)
    for task in benchmark.tasks:
        _freeze_earlier_heads(model, task.index)
        if task.index > 0 and config.freeze_statistics_after_first_task:
            model.freeze_normalisation(parameters=False)
        method.before_task(model, task)
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        head = list(model.heads[task.index].parameters())
        optimizer = method.optimizer(model, task, shared, head)
        schedule = (torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), config.lr_gamma)
                    if config.lr_milestones else None)
        model.train()
        step_time, steps = 0.0, 0
        for epoch in range(config.epochs):
            next(epoch_counter, None)
            permutation = torch.randperm(len(task.train_x), generator=order)
            for batch in permutation.split(config.batch_size):
                x, y = task.train_x[batch], task.train_y[batch].to(where)
                if config.augmentation == "crop-flip":
                    x = crop_flip(x, order)
                x = x.to(where)
                tic = time.perf_counter()
                features = model.features(x)
                loss = F.cross_entropy(model.heads[task.index](features), y)
                penalty = method.penalty(model, task, x, features)
                if penalty is not None:
                    loss = loss + penalty
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step_time += time.perf_counter() - tic
                steps += 1
            if schedule is not None:
                schedule.step()
            for j in tracked:
                if j <= task.index:
                    loss_curves[j].append((task.index * config.epochs + epoch + 1,
                                           evaluate(model, benchmark.tasks[j], config.eval_batch_size)[1]))
        step_seconds.append(step_time / max(steps, 1))
        method.after_task(model, task)
        for j in range(task.index + 1):
            accuracy[task.index, j] = evaluate(model, benchmark.tasks[j], config.eval_batch_size)[0]
    for _ in epoch_counter:
        pass
    result = RunResult(method=method.name, benchmark=benchmark.name, seed=config.seed, accuracy=accuracy,
                       loss_curves=loss_curves, step_seconds=step_seconds,
                       seconds=time.perf_counter() - start_time, epochs=config.epochs)
    return result, model
