"""Reading the inputs of linear layers with forward hooks.

A layer that computes ``y = W x`` (``nn.Linear``), a convolution (``nn.Conv2d``, which is a linear
map on unfolded patches) and GPT-2's ``Conv1D`` (``y = x @ weight`` with weight ``(d_in, d_out)``)
all see their input as rows of a matrix ``X``. These rows are what the null-space methods protect:
Adam-NSCL accumulates ``XᵀX`` per layer, AlphaEdit reads the FFN keys ``k`` at ``c_proj``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from nullspace.linalg import CovarianceAccumulator

__all__ = ["input_dim", "layer_input_rows", "record_covariances", "weight_as_matrix"]


def _is_conv1d(module: nn.Module) -> bool:
    # transformers.pytorch_utils.Conv1D, recognised by name to keep transformers optional here.
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def input_dim(module: nn.Module) -> int:
    """Length of one input row of ``module``: ``in_features``, ``C·k·k`` or Conv1D's ``d_in``."""
    if isinstance(module, nn.Linear):
        return module.in_features
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return module.in_channels // module.groups * kh * kw
    if _is_conv1d(module):
        return module.weight.shape[0]
    raise TypeError(f"unsupported layer type {type(module).__name__}: expected Linear, Conv2d or Conv1D.")


def layer_input_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The rows of ``X`` that ``module`` multiplies by its weight, shape ``(rows, input_dim)``.

    For ``nn.Conv2d`` the input is unfolded with the convolution's own kernel size, dilation,
    padding and stride, so that a row lines up with the weight viewed as ``(out, C·k·k)``
    (see :func:`weight_as_matrix`). Grouped convolutions are not supported.
    """
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            raise ValueError("grouped convolutions are not supported: their weight is block-diagonal.")
        if isinstance(module.padding, str):
            raise TypeError("string padding ('same') is not supported: give the padding as numbers.")
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation,
                        padding=module.padding, stride=module.stride)  # (N, C·k·k, L)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    width = input_dim(module)
    if x.ndim == 0 or x.shape[-1] != width:
        raise ValueError(f"the layer's input must end with its input dimension {width}, got shape {tuple(x.shape)}: "
                         f"pass what the layer itself receives, (..., {width}).")
    return x.reshape(-1, width)


def weight_as_matrix(module: nn.Module) -> torch.Tensor:
    """A view of the weight as ``(out, input_dim)``, so that ``y = X @ Wᵀ`` row by row.

    For GPT-2's Conv1D (weight stored as ``(d_in, d_out)``) this is the transpose.
    """
    if isinstance(module, nn.Linear):
        return module.weight
    if isinstance(module, nn.Conv2d):
        return module.weight.view(module.out_channels, -1)
    if _is_conv1d(module):
        return module.weight.T
    raise TypeError(f"unsupported layer type {type(module).__name__}: expected Linear, Conv2d or Conv1D.")


@contextmanager
def record_covariances(
    layers: Mapping[str, nn.Module],
    accumulators: dict[str, CovarianceAccumulator] | None = None,
) -> Iterator[dict[str, CovarianceAccumulator]]:
    """Accumulate the uncentered covariance of each layer's inputs while the block runs.

    Example::

        with record_covariances({"conv1": model.conv1}) as covs:
            for x, _ in loader:
                model(x)
        covs["conv1"].covariance

    Pass ``accumulators`` to keep adding to existing ones (Adam-NSCL Eq. 4 across tasks).
    The hooks are removed when the block ends, even on error.
    """
    accs = accumulators if accumulators is not None else {}
    for name, layer in layers.items():
        accs.setdefault(name, CovarianceAccumulator(input_dim(layer)))
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            accs[name].update(layer_input_rows(module, inputs[0].detach()))
        return hook

    try:
        for name, layer in layers.items():
            handles.append(layer.register_forward_hook(make_hook(name)))
        yield accs
    finally:
        for handle in handles:
            handle.remove()
