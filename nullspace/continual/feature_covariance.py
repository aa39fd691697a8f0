"""Per-layer input covariances accumulated across tasks (Adam-NSCL Eq. 4) and their null spaces.

After each task, one no-grad pass over the task's training data (model in eval mode) records the
inputs of every shared layer with :func:`nullspace.capture.record_covariances` (convolution
inputs unfolded with the layer's own padding, stride and dilation). The accumulators keep the
sums ``Σ xxᵀ`` and counts, so the covariance after task ``t`` is the sample-weighted average over
all tasks so far, which is Eq. 4 (the paper's Algorithm 2 uses every sample).

The official code departs from this in one way, available as ``batch_means=True``: its hook
averages each mini-batch (32 images on CIFAR) into one mean input before unfolding, so the
covariance is built from batch means, not from samples. On a fully connected layer that leaves
one row per batch, and a much lower rank.
"""

from __future__ import annotations

import warnings

import torch

from nullspace.capture import layer_input_rows, record_covariances
from nullspace.continual.arguments import check_int
from nullspace.continual.benchmarks import Task
from nullspace.continual.models import ContinualModel
from nullspace.linalg import CovarianceAccumulator, NullSpace, SelectionRule, null_space

__all__ = ["TaskCovariances"]


class TaskCovariances:
    """The running uncentered covariance of each shared layer's inputs over all tasks seen.

    Args:
        batch_means: build it from mini-batch means, as the official code does (see the module
            docstring), instead of from every sample as the paper's Algorithm 2 does.
        batch_size: the mini-batch of the pass; with ``batch_means`` it decides how many samples
            each mean averages (the official code uses the training batch, 32).
    """

    def __init__(self, batch_means: bool = False, batch_size: int = 256) -> None:
        self.accumulators: dict[str, CovarianceAccumulator] = {}
        self.batch_means = batch_means
        self.batch_size = check_int(batch_size, "batch_size")
        self.tasks_seen = 0

    @torch.no_grad()
    def add_task(self, model: ContinualModel, task: Task) -> None:
        """Accumulate the layer inputs of ``task``'s training data (Eq. 4)."""
        was_training = model.training
        model.eval()
        where = next(model.parameters()).device
        # batch means average shuffled batches, as the official code's training loader does
        order = torch.randperm(len(task.train_x)) if self.batch_means else torch.arange(len(task.train_x))
        with self._recording(model):
            for batch in order.split(self.batch_size):
                model(task.train_x[batch].to(where), task.index)
        model.train(was_training)
        self.tasks_seen += 1

    def _recording(self, model: ContinualModel):
        layers = model.shared_layers()
        if not self.batch_means:
            return record_covariances(layers, self.accumulators)
        return _BatchMeanHooks(layers, self.accumulators)

    def covariances(self) -> dict[str, torch.Tensor]:
        """The current covariance of each layer (float64, ``(d, d)``)."""
        if not self.accumulators:
            raise ValueError("no task was added yet: call add_task() after training a task.")
        return {name: acc.covariance for name, acc in self.accumulators.items()}

    def null_spaces(self, rule: SelectionRule) -> dict[str, NullSpace]:
        """Each layer's approximate null space under ``rule``. A layer whose null space is empty
        is frozen from now on (its projected update is zero); that is allowed, not an error. A
        layer whose every direction the rule counts as null (the paper's ``a·λ_min`` on a covariance
        whose eigenvalues all lie within a factor ``a``) is not protected at all, as the paper's
        rule and its official code would have it; that is allowed too, with a ``UserWarning``
        naming the layer."""
        spaces = {name: null_space(cov, rule, allow_empty=True, allow_full=True)
                  for name, cov in self.covariances().items()}
        for name, space in spaces.items():
            if space.null_dim == space.dim and float(self.accumulators[name].covariance.abs().max()) > 0:
                warnings.warn(f"layer {name!r}: the rule {rule.describe()} counts all {space.dim} directions as null, "
                              "so this layer is not protected from now on (its eigenvalues all lie within the rule's "
                              "threshold); a smaller a, or an energy rule, would protect it", UserWarning, stacklevel=2)
        return spaces


class _BatchMeanHooks:
    """Forward hooks that add the rows of each batch's *mean* input (the official code's hook)."""

    def __init__(self, layers: dict, accumulators: dict[str, CovarianceAccumulator]) -> None:
        from nullspace.capture import input_dim

        self.layers, self.accumulators, self.handles = layers, accumulators, []
        for name, layer in layers.items():
            accumulators.setdefault(name, CovarianceAccumulator(input_dim(layer)))

    def __enter__(self) -> None:
        for name, layer in self.layers.items():
            def hook(module, inputs, output, name=name):
                mean_input = inputs[0].detach().mean(0, keepdim=True)
                self.accumulators[name].update(layer_input_rows(module, mean_input))
            self.handles.append(layer.register_forward_hook(hook))

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
