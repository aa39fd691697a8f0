"""The course's hyperparameters for each benchmark, in one place.

The lessons and ``benchmarks/continual.py`` build their runs from here, so the numbers a lesson
shows and the numbers the benchmark prints come from the same settings. Learning rates follow the
prototype that was tuned on this kind of machine (Adam 1e-3, batch 32, fresh optimizer per task);
the paper's CIFAR settings (ResNet-18, lr 1e-4 then 5e-5, 80 epochs) are for GPU users.
"""

from __future__ import annotations

from collections.abc import Callable

from nullspace.continual.benchmarks import Benchmark
from nullspace.continual.benchmarks import load_benchmark as benchmark
from nullspace.continual.methods import EWC, GPM, AdamNSCLMethod, ContinualMethod, FineTune, LwF
from nullspace.continual.models import ContinualModel, model_for
from nullspace.continual.trainer import TrainConfig
from nullspace.linalg import EnergyRule

__all__ = ["EPOCHS", "LESSON_EPOCHS", "METHOD_NAMES", "benchmark", "course_methods", "model_factory", "train_config"]

EPOCHS = {"digits": 20, "gratings": 8, "cifar100": 80}
LESSON_EPOCHS = {"digits": 10, "gratings": 4, "cifar100": 80}   # lesson 4 runs many methods: half length
EWC_STRENGTH = {"digits": 1e3, "gratings": 1e5, "cifar100": 1e2}
NSCL_ENERGY = 0.95
NSCL_HEAD_LR = 3e-3   # the paper also gives the heads a larger learning rate than the shared layers
METHOD_NAMES = ("finetune-sgd", "finetune-adam", "ewc", "lwf", "gpm", "adam-nscl")


def model_factory(name: str, bench: Benchmark) -> Callable[[], ContinualModel]:
    """The model for a benchmark: the course CNN, or the pre-activation ResNet-18 on CIFAR-100."""
    architecture = "resnet18" if name == "cifar100" else "cnn"
    return lambda: model_for(bench.input_shape, bench.num_tasks, bench.classes_per_task, architecture)


def train_config(name: str, seed: int = 0, epochs: int | None = None) -> TrainConfig:
    """Epochs and batch size for a benchmark (``epochs`` overrides, for quick lesson runs)."""
    return TrainConfig(epochs=epochs if epochs is not None else EPOCHS[name], batch_size=32, seed=seed)


def course_methods(name: str) -> dict[str, Callable[[], ContinualMethod]]:
    """Factories of every method with the course's hyperparameters for benchmark ``name``.

    On CIFAR-100 (ResNet-18, GPU) the shared layers use the paper's smaller learning rate (1e-4,
    heads 1e-3); this setting has not been run on the course's machine (it has no GPU).
    """
    lr, head_lr = (1e-4, 1e-3) if name == "cifar100" else (1e-3, NSCL_HEAD_LR)
    return {
        "finetune-sgd": lambda: FineTune("sgd", lr=0.02),
        "finetune-adam": lambda: FineTune("adam", lr=lr),
        "ewc": lambda: EWC(strength=EWC_STRENGTH[name], lr=lr),
        "lwf": lambda: LwF(strength=1.0, temperature=2.0, lr=lr),
        "gpm": lambda: GPM(lr=0.02, momentum=0.9),
        "adam-nscl": lambda: AdamNSCLMethod(rule=EnergyRule(NSCL_ENERGY), lr=lr, head_lr=head_lr),
    }
