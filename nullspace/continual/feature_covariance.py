"""Per-layer input covariances accumulated across tasks (Adam-NSCL Eq. 4) and their null spaces.

After each task, one no-grad pass over the task's training data (model in eval mode) records the
inputs of every shared layer with :func:`nullspace.capture.record_covariances` (convolution
inputs unfolded with the layer's own padding, stride and dilation). The accumulators keep the
sums ``Σ xxᵀ`` and counts, so the covariance after task ``t`` is the sample-weighted average over
all tasks so far, which is Eq. 4. Both Adam-NSCL and GPM read their subspaces from here.
"""

from __future__ import annotations

import torch

from nullspace.capture import record_covariances
from nullspace.continual.benchmarks import Task
from nullspace.continual.models import ContinualModel
from nullspace.linalg import CovarianceAccumulator, NullSpace, SelectionRule, null_space

__all__ = ["TaskCovariances"]


class TaskCovariances:
    """The running uncentered covariance of each shared layer's inputs over all tasks seen."""

    def __init__(self) -> None:
        self.accumulators: dict[str, CovarianceAccumulator] = {}
        self.tasks_seen = 0

    @torch.no_grad()
    def add_task(self, model: ContinualModel, task: Task, batch_size: int = 256) -> None:
        """Accumulate the layer inputs of ``task``'s training data (Eq. 4)."""
        was_training = model.training
        model.eval()
        where = next(model.parameters()).device
        with record_covariances(model.shared_layers(), self.accumulators):
            for start in range(0, len(task.train_x), batch_size):
                model(task.train_x[start:start + batch_size].to(where), task.index)
        model.train(was_training)
        self.tasks_seen += 1

    def covariances(self) -> dict[str, torch.Tensor]:
        """The current covariance of each layer (float64, ``(d, d)``)."""
        if not self.accumulators:
            raise ValueError("no task was added yet: call add_task() after training a task.")
        return {name: acc.covariance for name, acc in self.accumulators.items()}

    def null_spaces(self, rule: SelectionRule) -> dict[str, NullSpace]:
        """Each layer's approximate null space under ``rule``. A layer whose null space is empty
        is frozen from now on (its projected update is zero); that is allowed, not an error."""
        return {name: null_space(cov, rule, allow_empty=True) for name, cov in self.covariances().items()}
