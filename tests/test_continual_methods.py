"""Methods and trainer: Adam-NSCL keeps old outputs in place, never skips its projection, and the
baselines do what they claim."""

import numpy as np
import pytest
import torch
from torch import nn

from nullspace.capture import layer_input_rows
from nullspace.continual.benchmarks import Benchmark, Task
from nullspace.continual.methods import EWC, GPM, AdamNSCL, AdamNSCLMethod, FineTune, LwF
from nullspace.continual.models import PreActResNet18, SmallCNN
from nullspace.continual.trainer import TrainConfig, train_sequence
from nullspace.linalg import RelativeRule, null_space

EXACT = RelativeRule(1e-9)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)  # picks exactly-zero eigenvalues (float64 round-off), nothing else


def two_task_benchmark(seed: int = 0) -> Benchmark:
    """In task 1 the green channel copies the red one and the blue one is −½ red, so the first
    conv's input patches have an exact 18-dimensional null space that is not aligned with the
    coordinate axes; task 2 uses independent channels."""
    g = torch.Generator().manual_seed(seed)
    tasks = []
    for index in range(2):
        x = torch.randn(96, 3, 8, 8, generator=g)
        if index == 0:
            x[:, 1] = x[:, 0]
            x[:, 2] = -0.5 * x[:, 0]
        y = (x[:, :, :4].mean((1, 2, 3)) > x[:, :, 4:].mean((1, 2, 3))).long()
        tasks.append(Task(index, (2 * index, 2 * index + 1), x[:64], y[:64], x[64:], y[64:]))
    return Benchmark("two-task", tuple(tasks), (3, 8, 8), 2)


def tiny_cnn(bench: Benchmark) -> SmallCNN:
    return SmallCNN(bench.input_shape, bench.num_tasks, 2, channels=(4, 8), hidden=16, first_kernel=3)


def first_task_outputs(model: SmallCNN, bench: Benchmark) -> torch.Tensor:
    with torch.no_grad():
        return model.conv1(bench.tasks[0].train_x)


def train_and_measure(method, bench: Benchmark) -> tuple[float, float]:
    """Relative change of conv1's outputs on task-1 inputs, and of its weight, over task 2."""
    snapshots = {}

    class Snapshot(type(method)):
        def after_task(self, model, task):
            super().after_task(model, task)
            snapshots[task.index] = (first_task_outputs(model, bench), model.conv1.weight.detach().clone())

    method.__class__ = Snapshot
    train_sequence(bench, method, lambda: tiny_cnn(bench), TrainConfig(epochs=3, batch_size=16))
    (out1, w1), (out2, w2) = snapshots[0], snapshots[1]
    return float((out2 - out1).norm() / out1.norm()), float((w2 - w1).norm() / w1.norm())


def test_projected_layer_keeps_old_outputs_while_fine_tuning_moves_them():
    bench = two_task_benchmark()
    nscl_output_change, nscl_weight_change = train_and_measure(AdamNSCLMethod(rule=EXACT), bench)
    ft_output_change, _ = train_and_measure(FineTune("adam"), bench)
    assert nscl_weight_change > 1e-2, "the projected layer must still learn task 2"
    assert nscl_output_change <= 1e-5
    assert ft_output_change > 1e-2


def test_projecting_the_gradient_instead_of_the_update_leaks():
    bench = two_task_benchmark()
    change, _ = train_and_measure(AdamNSCLMethod(rule=EXACT, project="gradient"), bench)
    assert change > 1e-3, "Adam's per-coordinate scaling should move a projected gradient out"


def protected_linear(seed=0):
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(6, 3, bias=False)
    old_inputs = torch.randn(40, 3, generator=g) @ torch.randn(3, 6, generator=g)  # rank 3 of 6
    ns = null_space(old_inputs.double().T @ old_inputs.double(), EXACT)
    return layer, old_inputs, ns


def test_optimizer_never_skips_after_zero_grad_to_none():
    """The official code builds its projectors in a step where grads are None (PyTorch ≥ 2 sets
    them to None in zero_grad) and skips those parameters. Ours are fixed at construction."""
    layer, old_inputs, ns = protected_linear()
    before, weight_before = layer(old_inputs).detach(), layer.weight.detach().clone()
    optimizer = AdamNSCL(layer.parameters(), null_spaces={layer.weight: ns}, lr=0.1)
    for _ in range(5):
        optimizer.zero_grad(set_to_none=True)
        assert layer.weight.grad is None
        layer(torch.randn(8, 6)).pow(2).sum().backward()
        optimizer.step()
    assert optimizer.projected_steps == 5
    assert (layer(old_inputs).detach() - before).norm() / before.norm() <= 1e-5
    torch.testing.assert_close((layer.weight.detach() - weight_before) @ ns.range_basis.float(),
                               torch.zeros(3, 3), atol=1e-5, rtol=0)


def test_a_null_space_for_a_parameter_outside_the_optimizer_is_an_error():
    layer, _, ns = protected_linear()
    other = nn.Linear(6, 3, bias=False)
    with pytest.raises(ValueError, match="silently skipped"):
        AdamNSCL(other.parameters(), null_spaces={layer.weight: ns})
    with pytest.raises(ValueError, match="dimension"):
        full = null_space(torch.eye(5), RelativeRule(2.0), allow_full=True)
        AdamNSCL(layer.parameters(), null_spaces={layer.weight: full})


def test_without_null_spaces_it_is_plain_adam_and_frobenius_scale_divides_by_sqrt_k():
    torch.manual_seed(0)
    a, b = nn.Linear(6, 3), nn.Linear(6, 3)
    b.load_state_dict(a.state_dict())
    ours, reference = AdamNSCL(a.parameters(), lr=0.01), torch.optim.Adam(b.parameters(), lr=0.01)
    x = torch.randn(16, 6)
    for _ in range(4):
        for layer, opt in ((a, ours), (b, reference)):
            opt.zero_grad()
            layer(x).pow(2).sum().backward()
            opt.step()
    torch.testing.assert_close(a.weight, b.weight)

    layer, _, ns = protected_linear()
    steps = []
    for scaled in (False, True):
        copy = nn.Linear(6, 3, bias=False)
        copy.load_state_dict(layer.state_dict())
        opt = AdamNSCL(copy.parameters(), null_spaces={copy.weight: ns}, lr=0.01, scale_by_frobenius=scaled)
        copy(x).pow(2).sum().backward()
        opt.step()
        steps.append(copy.weight.detach() - layer.weight.detach())
    torch.testing.assert_close(steps[1], steps[0] / np.sqrt(ns.null_dim))


def test_gpm_projects_the_sgd_gradient_exactly():
    bench = two_task_benchmark()
    gpm = GPM(base_energy=1.0 - 1e-12, energy_step=0.0)
    change, weight_change = train_and_measure(gpm, bench)
    assert weight_change > 1e-3 and change <= 1e-5


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_away_from_it():
    bench = two_task_benchmark()
    model = tiny_cnn(bench)
    ewc = EWC(strength=10.0)
    ewc.after_task(model, bench.tasks[0])
    x = bench.tasks[1].train_x[:8]
    with torch.no_grad():
        assert float(ewc.penalty(model, bench.tasks[1], x, model.features(x))) == 0.0
    fisher = ewc.anchors[0][0]
    assert set(fisher) == {"conv1.weight", "conv2.weight", "fc.weight"}
    assert all(bool((f >= 0).all()) for f in fisher.values()) and sum(float(f.sum()) for f in fisher.values()) > 0
    with torch.no_grad():
        model.fc.weight.add_(0.1)
        assert float(ewc.penalty(model, bench.tasks[1], x, model.features(x))) > 0


def test_lwf_penalty_is_zero_for_the_teacher_itself():
    bench = two_task_benchmark()
    model = tiny_cnn(bench)
    lwf = LwF()
    lwf.before_task(model, bench.tasks[1])
    x = bench.tasks[1].train_x[:8]
    with torch.no_grad():
        assert float(lwf.penalty(model, bench.tasks[1], x, model.features(x))) == pytest.approx(0.0, abs=1e-7)
        model.fc.weight.mul_(1.5)
        assert float(lwf.penalty(model, bench.tasks[1], x, model.features(x))) > 0


def test_trainer_is_deterministic_and_fills_the_lower_triangle():
    bench = two_task_benchmark()
    runs = [train_sequence(bench, FineTune("sgd"), lambda: tiny_cnn(bench), TrainConfig(epochs=2, seed=3))[0]
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].accuracy, runs[1].accuracy)
    r = runs[0].accuracy
    assert not np.isnan(r[np.tril_indices(2)]).any() and np.isnan(r[0, 1])
    assert len(runs[0].loss_curves[0]) == 4 and len(runs[0].loss_curves[1]) == 2
    assert len(runs[0].step_seconds) == 2


def test_earlier_heads_are_frozen():
    bench = two_task_benchmark()
    _, model = train_sequence(bench, FineTune("adam"), lambda: tiny_cnn(bench), TrainConfig(epochs=1))
    assert not any(p.requires_grad for p in model.heads[0].parameters())


def test_shared_bias_is_refused_by_adam_nscl():
    bench = two_task_benchmark()

    def with_bias():
        model = tiny_cnn(bench)
        model.fc = nn.Linear(model.fc.in_features, model.fc.out_features, bias=True)
        return model

    with pytest.raises(ValueError, match="bias"):
        train_sequence(bench, AdamNSCLMethod(), with_bias, TrainConfig(epochs=1))


def test_resnet_freezes_batch_norm_and_exposes_its_convolutions():
    model = PreActResNet18((3, 32, 32), num_tasks=2, classes_per_task=10, width=4)
    layers = model.shared_layers()
    assert all(isinstance(m, nn.Conv2d) and m.bias is None for m in layers.values())
    assert len(layers) == 1 + 16 + 3
    x = torch.randn(2, 3, 32, 32)
    assert model(x, 1).shape == (2, 10)
    model.freeze_normalisation()
    model.train()
    bn = model.normalisation_layers()[0]
    assert not bn.training and not any(p.requires_grad for p in bn.parameters())
    rows = layer_input_rows(layers["blocks.2.conv1"], torch.randn(1, 4, 32, 32))
    assert rows.shape == (16 * 16, 4 * 9)
