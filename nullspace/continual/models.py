"""Multi-head networks for task-incremental learning.

Every model has shared layers (the ones the null-space methods protect) and one linear head per
task. Two choices keep old-task outputs exactly where the projection theory puts them:

* **No bias in shared layers.** A layer ``y = W x + b`` changes its output on *every* old input
  when ``b`` moves, whatever the projection of ``W``'s update. The course CNN therefore has
  ``bias=False`` in every shared layer (the heads, which are never shared, keep their bias).
* **Normalisation cannot be projected.** Batch-norm statistics and affine parameters also move
  old outputs and are not linear in a layer input. The paper regularises the affine parameters
  with EWC (coefficient 100), and its official code lets the running statistics follow each new
  task; the course's variant freezes both after the first task
  (:meth:`ContinualModel.freeze_normalisation`), which keeps old outputs exactly in place. Both
  are options of :class:`~nullspace.continual.methods.AdamNSCLMethod`.

Three networks: :class:`MLP` (for the scrambled-digits sensor, whose pixels have no image
structure), :class:`SmallCNN` (the course CNN) and :class:`PreActResNet18` (the paper's network).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from nullspace.continual.arguments import check_choice, check_int

__all__ = ["MLP", "ContinualModel", "PreActResNet18", "SmallCNN", "model_for"]

NORMALISATION_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


class ContinualModel(nn.Module):
    """Base class: a feature extractor with shared layers and one head per task."""

    def __init__(self, feature_dim: int, num_tasks: int, classes_per_task: int) -> None:
        check_int(num_tasks, "num_tasks")
        check_int(classes_per_task, "classes_per_task")
        super().__init__()
        self.heads = nn.ModuleList(nn.Linear(feature_dim, classes_per_task) for _ in range(num_tasks))
        self.normalisation_frozen = False

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, task: int) -> torch.Tensor:
        """Logits of head ``task`` (the task identity is given: task-incremental setting)."""
        if not 0 <= task < len(self.heads):
            raise IndexError(f"task {task} out of range: the model has {len(self.heads)} heads.")
        return self.heads[task](self.features(x))

    def shared_layers(self) -> dict[str, nn.Module]:
        """The Conv2d / Linear layers shared by all tasks (the heads excluded), by name."""
        return {name: module for name, module in self.named_modules()
                if isinstance(module, (nn.Conv2d, nn.Linear)) and not name.startswith("heads.")}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter outside the heads (shared layers and normalisation)."""
        return (p for name, p in self.named_parameters() if not name.startswith("heads."))

    def normalisation_layers(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, NORMALISATION_TYPES)]

    def normalisation_parameters(self) -> dict[str, nn.Parameter]:
        """The affine parameters of the normalisation layers, by name."""
        names = {id(p): name for name, p in self.named_parameters()}
        return {names[id(p)]: p for layer in self.normalisation_layers() for p in layer.parameters()}

    def freeze_normalisation(self, parameters: bool = True) -> None:
        """Stop the running statistics of the normalisation layers from moving (they are used in
        eval mode from now on, also while training) and, with ``parameters=True``, stop their
        affine parameters from training."""
        self.normalisation_frozen = True
        for layer in self.normalisation_layers():
            for p in layer.parameters():
                p.requires_grad_(not parameters and p.requires_grad)
        self.train(self.training)

    def train(self, mode: bool = True) -> ContinualModel:
        super().train(mode)
        if self.normalisation_frozen:
            for layer in self.normalisation_layers():
                layer.eval()
        return self

    def check_shared_layers_have_no_bias(self) -> None:
        """Raise if a shared layer has a bias (an unprojected bias moves every old output)."""
        with_bias = [name for name, layer in self.shared_layers().items() if layer.bias is not None]
        if with_bias:
            raise ValueError(
                f"shared layers {with_bias} have a bias. A bias cannot be projected into the null "
                "space of the layer inputs, so it would shift old-task outputs: build them with "
                "bias=False (a following normalisation layer makes the bias redundant anyway).")


class SmallCNN(ContinualModel):
    """conv(k×k, C→c1) → ReLU → maxpool → conv(3×3, c1→c2) → ReLU → maxpool → fc → ReLU → heads.

    No bias and no normalisation in the shared layers (see the module docstring). The first
    kernel size matters for Adam-NSCL: a 3×3 kernel on one grey channel sees only 9 numbers, which
    the first task already spans, so that layer freezes; 5×5 on colour sees 75.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_tasks: int, classes_per_task: int,
                 channels: tuple[int, int] = (16, 32), hidden: int = 64, first_kernel: int = 3) -> None:
        in_channels, height, width = input_shape
        check_int(hidden, "hidden")
        for i, c in enumerate(channels):
            check_int(c, f"channels[{i}]")
        check_int(first_kernel, "first_kernel")
        if first_kernel % 2 == 0:
            raise ValueError(f"first_kernel must be odd (the convolution pads by first_kernel // 2 to keep "
                             f"the image size), got {first_kernel}. Use 3 or 5.")
        if height % 4 or width % 4:
            raise ValueError(f"SmallCNN pools twice by 2: height and width must be multiples of 4, "
                             f"got {height}×{width}.")
        super().__init__(hidden, num_tasks, classes_per_task)
        c1, c2 = channels
        self.conv1 = nn.Conv2d(in_channels, c1, first_kernel, padding=first_kernel // 2, bias=False)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.fc = nn.Linear(c2 * (height // 4) * (width // 4), hidden, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))


class _PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = (nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
                         if stride != 1 or in_planes != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normalised = self.bn1(x)
        out = F.relu(normalised)
        # as the official network has it: a projection shortcut reads relu(bn1(x)), an identity
        # shortcut carries bn1(x) (normalised, before the ReLU), not x itself
        shortcut = self.shortcut(out) if self.shortcut is not None else normalised
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(ContinualModel):
    """The pre-activation ResNet-18 of the paper's CIFAR experiments (for GPU users), as the
    official Adam-NSCL code builds it: a 3×3 stem, four stages of two pre-activation blocks
    (``width``, 2·, 4·, 8·``width`` channels), a final batch norm and ReLU, global average pooling.

    Convolutions have no bias; the heads keep theirs. Batch norm is either frozen after task 1
    or regularised with EWC, depending on the method (see the module docstring).
    """

    def __init__(self, input_shape: tuple[int, int, int], num_tasks: int, classes_per_task: int,
                 width: int = 64) -> None:
        check_int(width, "width")
        super().__init__(8 * width, num_tasks, classes_per_task)
        self.conv1 = nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False)
        blocks, in_planes = [], width
        for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
            for block_stride in (stride, 1):
                blocks.append(_PreActBlock(in_planes, planes, block_stride))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.conv1(x))
        return F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)


class MLP(ContinualModel):
    """Flatten → Linear → [BatchNorm] → ReLU → … → heads, no bias in the shared layers.

    For inputs without image structure, such as the scrambled-digits sensor, where a convolution
    has nothing to share across positions. ``batch_norm=True`` normalises every hidden unit before
    its ReLU, as the paper's ResNet does before each convolution's ReLU: no unit is silent on a
    whole task, so no layer input has an exactly zero variance direction.
    """

    def __init__(self, input_shape: tuple[int, ...], num_tasks: int, classes_per_task: int,
                 hidden: tuple[int, ...] = (256, 256), batch_norm: bool = False) -> None:
        if not hidden:
            raise ValueError("hidden must list at least one layer width, got an empty tuple.")
        for i, width in enumerate(hidden):
            check_int(width, f"hidden[{i}]")
        super().__init__(hidden[-1], num_tasks, classes_per_task)
        widths = (math.prod(input_shape), *hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(widths))
        self.norms = nn.ModuleList((nn.BatchNorm1d(b) if batch_norm else nn.Identity()) for b in hidden)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer, norm in zip(self.layers, self.norms):
            x = F.relu(norm(layer(x)))
        return x


ARCHITECTURES = ("cnn", "mlp", "resnet18")


def model_for(input_shape: tuple[int, int, int], num_tasks: int, classes_per_task: int,
              architecture: str = "cnn") -> ContinualModel:
    """The course's models: ``"cnn"``, the small CNN with a 5×5 first kernel (75-dimensional
    patches on colour, 25 on the grey digits, so the first layer keeps room for later tasks);
    ``"mlp"``, two hidden layers of 256 with batch norm before each ReLU (the scrambled-digits
    sensor); ``"resnet18"``, the paper's pre-activation ResNet-18 (for GPU users)."""
    check_choice(architecture, "architecture", ARCHITECTURES)
    if architecture == "resnet18":
        return PreActResNet18(input_shape, num_tasks, classes_per_task)
    if architecture == "mlp":
        return MLP(input_shape, num_tasks, classes_per_task, batch_norm=True)
    return SmallCNN(input_shape, num_tasks, classes_per_task, first_kernel=5)
