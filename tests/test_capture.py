"""Layer inputs read by hooks line up with the weights they multiply."""

import pytest
import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from nullspace.capture import input_dim, layer_input_rows, record_covariances, weight_as_matrix


@pytest.mark.parametrize("conv", [
    nn.Conv2d(3, 5, 3, padding=1, bias=False),
    nn.Conv2d(3, 5, (3, 2), stride=2, padding=(1, 0), dilation=(1, 2), bias=False),
])
def test_unfolded_rows_reproduce_the_convolution(conv):
    x = torch.randn(2, 3, 9, 8)
    rows = layer_input_rows(conv, x)
    assert rows.shape[1] == input_dim(conv) == 3 * conv.kernel_size[0] * conv.kernel_size[1]
    y = conv(x)  # (N, out, H', W')
    y_rows = y.permute(0, 2, 3, 1).reshape(-1, conv.out_channels)
    torch.testing.assert_close(rows @ weight_as_matrix(conv).T, y_rows, rtol=1e-5, atol=1e-5)


def test_linear_and_gpt2_conv1d_rows():
    lin, c1d = nn.Linear(6, 4, bias=False), Conv1D(4, 6)  # Conv1D(nf=out, nx=in)
    nn.init.normal_(c1d.weight)
    nn.init.zeros_(c1d.bias)
    x = torch.randn(2, 3, 6)
    for layer in (lin, c1d):
        rows = layer_input_rows(layer, x)
        assert rows.shape == (6, 6)
        torch.testing.assert_close(rows @ weight_as_matrix(layer).T, layer(x).reshape(-1, 4))


def test_record_covariances_accumulates_and_removes_hooks():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    x = torch.randn(10, 4)
    with record_covariances({"first": model[0], "second": model[2]}) as covs:
        model(x[:6])
        model(x[6:])
    model(x)  # hooks are gone: no further accumulation
    assert covs["first"].count == 10 and covs["second"].count == 10
    torch.testing.assert_close(covs["first"].covariance, (x.T @ x / 10).double())
    assert not model[0]._forward_hooks and not model[2]._forward_hooks


@pytest.mark.bad_input
def test_unsupported_layers_are_named():
    with pytest.raises(TypeError, match="unsupported layer type ReLU"):
        input_dim(nn.ReLU())
    with pytest.raises(ValueError, match="grouped"):
        layer_input_rows(nn.Conv2d(4, 4, 3, groups=2), torch.randn(1, 4, 5, 5))
