"""Checks for lesson 2, the null space of a layer. Each runs the learner's code on fresh inputs
(random layers, the course CNN with fresh weights) and compares it with the package's tested
version: :mod:`nullspace.capture` and :class:`nullspace.continual.methods.gpm.GradientProjectionSGD`."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from nullspace.capture import layer_input_rows, record_covariances, weight_as_matrix
from nullspace.continual.methods.gpm import GradientProjectionSGD
from nullspace.continual.models import model_for
from nullspace.course.verdict import exercise_check
from nullspace.linalg import CovarianceAccumulator, RelativeRule, null_space

__all__ = ["exercise_2_1", "exercise_2_2", "exercise_2_3", "exercise_2_4"]


def _course_cnn(seed: int, tasks: int = 2):
    torch.manual_seed(seed)
    return model_for((3, 8, 8), tasks, 3)


@exercise_check("2.1", "the input rows of a layer")
def exercise_2_1(learner_layer_input_rows) -> str:
    torch.manual_seed(21)
    convs = [nn.Conv2d(3, 4, 3, padding=1, bias=False),
             nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), bias=False),
             nn.Conv2d(2, 5, 5, stride=2, bias=False)]
    for conv in convs:
        x = torch.randn(2, conv.in_channels, 11, 10)
        got = learner_layer_input_rows(conv, x)
        expected = layer_input_rows(conv, x)
        where = (f"Conv2d(kernel {conv.kernel_size}, stride {conv.stride}, padding {conv.padding}, "
                 f"dilation {conv.dilation})")
        assert tuple(got.shape) == tuple(expected.shape), (
            f"{where}: expected rows of shape {tuple(expected.shape)} (one per image and output position, "
            f"C·k·k columns), got {tuple(got.shape)}. Cut the patches with the conv's own settings.")
        assert torch.allclose(got, expected, atol=1e-6), (
            f"{where}: the rows are not the patches in the order of the outputs. F.unfold gives "
            "(N, C·k·k, L): move the C·k·k axis last before flattening.")
        outputs = conv(x).permute(0, 2, 3, 1).reshape(-1, conv.out_channels)
        assert torch.allclose(got @ weight_as_matrix(conv).T, outputs, atol=1e-5)
    linear = nn.Linear(7, 3, bias=False)
    tokens = torch.randn(2, 5, 7)
    got = learner_layer_input_rows(linear, tokens)
    assert tuple(got.shape) == (10, 7), (
        f"nn.Linear(7, 3) on inputs of shape (2, 5, 7) sees 10 rows of 7 numbers; got shape {tuple(got.shape)}.")
    assert torch.equal(got, tokens.reshape(10, 7))
    try:
        learner_layer_input_rows(nn.Conv1d(3, 4, 3), torch.randn(2, 3, 9))
    except TypeError:
        pass
    else:
        raise AssertionError("for a layer that is neither nn.Linear nor nn.Conv2d, raise a TypeError "
                             "that names the layer type (do not guess its rows).")
    return "rows @ Wᵀ reproduces three convolutions and a linear layer on 3-D inputs."


class _Interrupted(Exception):
    """Raised inside a `with` block to see that the hooks let it through and are still removed."""


def _reference_covariances(model, layers, batches_per_task):
    accumulators: dict[str, CovarianceAccumulator] = {}
    with torch.no_grad(), record_covariances(layers, accumulators):
        for task, batches in enumerate(batches_per_task):
            for batch in batches:
                model(batch, task)
    return {name: acc.covariance for name, acc in accumulators.items()}


@exercise_check("2.2", "covariance hooks on a CNN (Eq. 4)")
def exercise_2_2(hooks_class) -> str:
    model = _course_cnn(22)
    layers = model.shared_layers()
    g = torch.Generator().manual_seed(22)
    # two tasks in uneven batches, inputs with a large mean (float32 sums lose digits on them)
    batches_per_task = [[3.0 + torch.randn(n, 3, 8, 8, generator=g) for n in sizes] for sizes in ((5, 1, 9), (4, 7))]
    hooks = hooks_class(layers)
    for task, batches in enumerate(batches_per_task):
        with hooks:
            for batch in batches:
                model(batch, task)  # with gradients on, as in a training loop
        left = {name: len(layer._forward_hooks) for name, layer in layers.items() if layer._forward_hooks}
        assert not left, f"hooks are still registered after the `with` block ended: {left}. Remove them in __exit__."
    expected = _reference_covariances(model, layers, batches_per_task)
    for name, reference in expected.items():
        got = hooks.covariance(name)
        assert tuple(got.shape) == tuple(reference.shape), (
            f"{name}: expected a {tuple(reference.shape)} covariance of the layer's input rows, got "
            f"{tuple(got.shape)} (record the hook's inputs, not its output).")
        assert not got.requires_grad, (
            f"{name}: the covariance is part of the autograd graph: detach the inputs in the hook "
            "(a graph kept across batches holds every batch in memory).")
        assert got.dtype == torch.float64, f"{name}: accumulate in float64, got {got.dtype}."
        error = float(torch.linalg.norm(got - reference) / torch.linalg.norm(reference))
        assert error < 1e-9, (
            f"{name}: relative error {error:.1e} against XᵀX / n over both tasks (Eq. 4). Divide by the number "
            "of rows (positions × images for a conv), sum over every batch and both `with` blocks, and cast to "
            "float64 before the product.")
    try:
        with hooks:
            model(batches_per_task[0][0], 0)
            raise _Interrupted
    except _Interrupted:
        pass
    else:
        raise AssertionError("an exception inside `with hooks:` disappeared: __exit__ must not swallow it.")
    assert not any(layer._forward_hooks for layer in layers.values()), "hooks remain after an exception."
    try:
        hooks_class({"fc": model.fc}).covariance("fc")
    except ValueError:
        pass
    else:
        raise AssertionError("covariance() of a layer that saw no input must raise a ValueError saying so.")
    rows = sum(len(layer_input_rows(layers["conv1"], b)) for bs in batches_per_task for b in bs)
    return f"conv1, conv2 and fc of the course CNN match record_covariances over two tasks ({rows} conv1 rows)."


@exercise_check("2.3", "how much a layer's old outputs move")
def exercise_2_3(output_change) -> str:
    torch.manual_seed(24)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
    linear = nn.Linear(6, 5, bias=False)
    cases = [(conv, torch.randn(2, 3, 9, 9)), (linear, torch.randn(3, 4, 6))]
    g = torch.Generator().manual_seed(24)
    for layer, inputs in cases:
        rows = layer_input_rows(layer, inputs)
        weight = weight_as_matrix(layer).detach()
        orthogonal = torch.linalg.qr(torch.randn(weight.shape[0], weight.shape[0], generator=g))[0]
        updates = {"a random update": 0.1 * torch.randn(layer.weight.shape, generator=g),
                   "a rotation of the outputs": ((orthogonal - torch.eye(weight.shape[0])) @ weight).reshape(
                       layer.weight.shape)}
        for what, update in updates.items():
            got = float(output_change(layer, inputs.clone(), update.clone()))
            expected = float(torch.linalg.norm(rows @ update.reshape(weight.shape).T) / torch.linalg.norm(rows @ weight.T))
            assert abs(got - expected) <= 1e-5 * expected, (
                f"{type(layer).__name__} with {what}: got {got:.4f}, expected ‖X Δᵀ‖ / ‖X Wᵀ‖ = {expected:.4f} "
                "(the norm of the change of the outputs, relative to the norm of the outputs).")
    return "matches ‖X Δᵀ‖ / ‖X Wᵀ‖ for a strided conv and a linear layer, a rotation of the outputs included."


@exercise_check("2.4", "a projected SGD step with momentum")
def exercise_2_4(projected_sgd_step) -> str:
    model = _course_cnn(23)
    g = torch.Generator().manual_seed(23)
    old_images = torch.randn(2, 3, 8, 8, generator=g)          # task 0: two images, so every layer
    new_images, new_labels = torch.randn(6, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    covariances = _reference_covariances(model, model.shared_layers(), [[old_images]])
    spaces = {name: null_space(cov, RelativeRule(1e-9), allow_empty=True) for name, cov in covariances.items()}
    bases = {name: space.range_basis for name, space in spaces.items()}   # float64, like U1 of the lesson
    with torch.no_grad():
        old_features = model.features(old_images)
        loss_before = float(F.cross_entropy(model(new_images, 1), new_labels))
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    reference = copy.deepcopy(model)
    layers = reference.shared_layers()
    lr, momentum, buffers = 0.05, 0.9, {}
    optimizer = GradientProjectionSGD(reference.parameters(), lr=lr, momentum=momentum,
                                      null_spaces={layers[name].weight: space for name, space in spaces.items()})
    for _ in range(3):
        for net in (model, reference):
            net.zero_grad(set_to_none=False)   # gradients zeroed in place, as some training loops do
            F.cross_entropy(net(new_images, 1), new_labels).backward()
        projected_sgd_step(model, {name: basis.clone() for name, basis in bases.items()}, lr, momentum, buffers)
        optimizer.step()
    pairs = sorted(zip(model.named_parameters(), reference.named_parameters()), key=lambda pair: pair[0][0].startswith("heads."))
    for (name, mine), (_, theirs) in pairs:   # shared layers first, then the heads
        moved = float((theirs.detach() - initial[name]).abs().max())
        assert torch.allclose(mine, theirs, atol=1e-6), (
            f"after three steps {name} differs from projected SGD with momentum (the reference moved it by "
            f"{moved:.2g} at most). Protected weights use the gradient g − (g U1) U1ᵀ (weight viewed as (out, d)); "
            "every parameter with a gradient (the head too) keeps a buffer b ← μ b + g and steps −lr·b.")
    with torch.no_grad():
        change = float(torch.linalg.norm(model.features(old_images) - old_features) / torch.linalg.norm(old_features))
        loss_after = float(F.cross_entropy(model(new_images, 1), new_labels))
    assert change < 1e-5, f"the old task's features moved by {change:.1e} (relative)."
    return (f"three steps took the new task's loss from {loss_before:.2f} to {loss_after:.2f}; the old task's "
            "features moved by less than 1e-5 (relative).")
