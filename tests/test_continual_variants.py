"""The paper's Adam-NSCL beside the course's, the official codes' departures as switches, GPM as
its paper and code do it, and the training protocol's options (schedule, augmentation, frozen
batch-norm statistics)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from nullspace.continual.benchmarks import Benchmark, Task
from nullspace.continual.feature_covariance import TaskCovariances
from nullspace.continual.methods import GPM, AdamNSCL, AdamNSCLMethod, FineTune
from nullspace.continual.methods.ewc import FisherAnchors
from nullspace.continual.methods.gpm import grow_basis
from nullspace.continual.models import MLP, PreActResNet18
from nullspace.continual.trainer import TrainConfig, crop_flip, train_sequence
from nullspace.linalg import EnergyRule, MinRatioRule

pytestmark = pytest.mark.usefixtures("one_thread")


def vector_benchmark(tasks: int = 2, n: int = 96, d: int = 12, seed: int = 0) -> Benchmark:
    g = torch.Generator().manual_seed(seed)
    out = []
    for index in range(tasks):
        x = torch.randn(n, 1, 1, d, generator=g) + index
        y = (x[..., 0].flatten() > index).long()
        out.append(Task(index, (2 * index, 2 * index + 1), x[:64], y[:64], x[64:], y[64:]))
    return Benchmark("vectors", tuple(out), (1, 1, d), 2)


def mlp_with_batch_norm(bench: Benchmark) -> MLP:
    return MLP(bench.input_shape, bench.num_tasks, 2, hidden=(16, 8), batch_norm=True)


def test_the_two_variants_are_named_and_configured_as_documented():
    paper, course = AdamNSCLMethod.paper(), AdamNSCLMethod.course()
    assert paper.name == "Adam-NSCL (paper, a=10)" and course.name == "Adam-NSCL (course, energy 0.95)"
    assert paper.rule == MinRatioRule(10.0) and paper.normalisation == "ewc" and paper.normalisation_ewc == 100.0
    assert course.rule == EnergyRule(0.95) and course.normalisation == "freeze"
    for method in (paper, course):
        assert not method.scale_by_frobenius and method.eps_placement == "pytorch"
        assert not method.covariances.batch_means
    assert AdamNSCLMethod.paper(a=30.0).name == "Adam-NSCL (paper, a=30)"


def test_paper_trains_batch_norm_under_ewc_and_course_freezes_it():
    bench = vector_benchmark()
    snapshots = {}
    for key, method in (("paper", AdamNSCLMethod.paper(a=10.0, lr=1e-2)),
                        ("paper, no penalty", AdamNSCLMethod.paper(a=10.0, lr=1e-2, normalisation_ewc=0.0)),
                        ("course", AdamNSCLMethod.course(lr=1e-2))):
        _, model = train_sequence(bench, method, lambda: mlp_with_batch_norm(bench),
                                  TrainConfig(epochs=2, seed=1, freeze_statistics_after_first_task=True))
        snapshots[key] = (method, model)
    paper, model = snapshots["paper"]
    assert paper.normalisation_anchors.tasks == 2
    assert set(paper.normalisation_anchors.total) == set(model.normalisation_parameters())
    assert all(p.requires_grad for p in model.normalisation_parameters().values())
    _, course_model = snapshots["course"]
    assert not any(p.requires_grad for p in course_model.normalisation_parameters().values())
    # the penalty holds batch norm nearer its task-1 values than no penalty at all
    moved = {}
    for key in ("paper", "paper, no penalty"):
        method, model = snapshots[key]
        anchors = method.normalisation_anchors
        moved[key] = float(anchors.penalty(model).detach())
    assert moved["paper"] < moved["paper, no penalty"]


def test_closed_form_ewc_has_the_gradient_of_the_sum_over_tasks():
    g = torch.Generator().manual_seed(3)
    layer = nn.Linear(4, 3, bias=False)
    anchors, pairs = FisherAnchors(), []
    for _ in range(3):
        fisher = {"weight": torch.rand(3, 4, generator=g)}
        anchor = {"weight": torch.randn(3, 4, generator=g)}
        anchors.add(fisher, anchor)
        pairs.append((fisher["weight"], anchor["weight"]))
    direct = sum((f * (layer.weight - a).pow(2)).sum() for f, a in pairs)
    closed = anchors.penalty(layer)
    grad_direct, = torch.autograd.grad(direct, layer.weight)
    grad_closed, = torch.autograd.grad(closed, layer.weight)
    torch.testing.assert_close(grad_closed, grad_direct)
    assert float(closed) <= float(direct) + 1e-5   # the dropped constant is non-negative


def test_batch_mean_covariance_has_one_row_per_batch_on_a_linear_layer():
    bench = vector_benchmark(tasks=1, n=160)   # 64 training samples
    model = MLP(bench.input_shape, 1, 2, hidden=(16,))
    samples, means = TaskCovariances(), TaskCovariances(batch_means=True, batch_size=32)
    for covariances in (samples, means):
        covariances.add_task(model, bench.tasks[0])
    rank = lambda c: int(torch.linalg.matrix_rank(c["layers.0"]))
    assert rank(samples.covariances()) == 12
    assert rank(means.covariances()) == 2                  # 64 samples in batches of 32: two mean rows
    assert means.accumulators["layers.0"].count == 2


def test_official_eps_placement_is_the_official_adam_update():
    torch.manual_seed(0)
    layer = nn.Linear(5, 2, bias=False)
    start = layer.weight.detach().clone()
    lr, eps, (beta1, beta2) = 0.01, 1e-3, (0.9, 0.999)   # a large ε makes the difference visible
    optimizer = AdamNSCL(layer.parameters(), lr=lr, eps=eps, eps_placement="official")
    x = torch.randn(7, 5)
    layer(x).pow(2).sum().backward()
    grad = layer.weight.grad.clone()
    optimizer.step()
    m, v = (1 - beta1) * grad, (1 - beta2) * grad * grad
    step_size = lr * math.sqrt(1 - beta2) / (1 - beta1)            # the official (pre-1.5) form
    torch.testing.assert_close(layer.weight.detach(), start - step_size * m / (v.sqrt() + eps))
    pytorch = start - lr * (m / (1 - beta1)) / ((v / (1 - beta2)).sqrt() + eps)
    assert not torch.allclose(layer.weight.detach(), pytorch)


def reference_gpm_basis(representations: list[np.ndarray], thresholds: list[float]) -> np.ndarray:
    """GPM's basis update written from the paper (Eqs. 5, 8, 9) with the SVD of R itself."""
    basis = None
    for r, threshold in zip(representations, thresholds):
        u, s, _ = np.linalg.svd(r, full_matrices=False)
        total = (s ** 2).sum()
        if basis is None:
            basis = u[:, :int(np.sum(np.cumsum(s ** 2) / total < threshold))]
            continue
        residual = r - basis @ basis.T @ r
        u_hat, s_hat, _ = np.linalg.svd(residual, full_matrices=False)
        accumulated, added = (total - (s_hat ** 2).sum()) / total, 0
        while added < len(s_hat) and accumulated < threshold:
            accumulated += s_hat[added] ** 2 / total
            added += 1
        basis = np.hstack([basis, u_hat[:, :added]])[:, :r.shape[0]]
    return basis


def test_grow_basis_matches_the_papers_svd_criterion():
    rng = np.random.default_rng(0)
    reps = [rng.standard_normal((10, 4)) @ rng.standard_normal((4, 30)) * np.linspace(3, 1, 30)
            + 0.05 * rng.standard_normal((10, 30)) for _ in range(3)]
    thresholds = [0.97, 0.973, 0.976]
    basis = None
    for r, threshold in zip(reps, thresholds):
        basis = grow_basis(basis, torch.from_numpy(r @ r.T), threshold)
    expected = reference_gpm_basis(reps, thresholds)
    assert basis.shape == expected.shape and 4 <= basis.shape[1] < 10
    torch.testing.assert_close(basis @ basis.T, torch.from_numpy(expected @ expected.T), atol=1e-8, rtol=0)
    torch.testing.assert_close(basis.T @ basis, torch.eye(basis.shape[1], dtype=torch.float64), atol=1e-10, rtol=0)


def test_gpm_uses_the_official_schedule_samples_and_plain_sgd():
    gpm = GPM()
    assert [round(gpm.threshold(t), 6) for t in (0, 1, 9)] == [0.97, 0.973, 0.997]
    assert gpm.samples == 125 and gpm.momentum == 0.0 and gpm.basis_kind == "grown"
    bench = vector_benchmark(tasks=3)
    train_sequence(bench, gpm, lambda: MLP(bench.input_shape, 3, 2, hidden=(16,)), TrainConfig(epochs=1))
    basis = gpm.bases["layers.0"]
    assert basis.shape[0] == 12 and 1 <= basis.shape[1] <= 12
    torch.testing.assert_close(basis.T @ basis, torch.eye(basis.shape[1], dtype=torch.float64), atol=1e-10, rtol=0)


def test_statistics_freeze_after_task_one_only_when_the_protocol_says_so():
    bench = vector_benchmark()
    means = {False: [], True: []}

    class Snapshot(FineTune):
        def __init__(self, into: list) -> None:
            super().__init__("adam")
            self.into = into

        def after_task(self, model, task):
            self.into.append(model.norms[0].running_mean.clone())

    for freeze, snapshots in means.items():
        train_sequence(bench, Snapshot(snapshots), lambda: mlp_with_batch_norm(bench),
                       TrainConfig(epochs=1, freeze_statistics_after_first_task=freeze))
    assert torch.equal(means[True][0], means[True][1])
    assert not torch.equal(means[False][0], means[False][1])


def test_learning_rate_milestones_multiply_every_group():
    bench = vector_benchmark(tasks=1)
    seen = []

    class Record(FineTune):
        def optimizer(self, model, task, shared, head):
            self.opt = super().optimizer(model, task, shared, head)
            return self.opt

    class Probe(Record):
        def penalty(self, model, task, x, features):
            seen.append(self.opt.param_groups[0]["lr"])

    train_sequence(bench, Probe("adam", lr=1e-2), lambda: MLP(bench.input_shape, 1, 2, hidden=(8,)),
                   TrainConfig(epochs=4, batch_size=64, lr_milestones=(1, 3), lr_gamma=0.5))
    assert seen == pytest.approx([1e-2, 5e-3, 5e-3, 2.5e-3])


def test_crop_flip_shifts_and_flips_like_torchvision():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    g = torch.Generator().manual_seed(0)
    out = crop_flip(x, g, padding=2)
    assert out.shape == x.shape
    for i in range(2):
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    again = crop_flip(x, torch.Generator().manual_seed(0), padding=2)
    assert torch.equal(out, again)


def test_identity_shortcut_carries_the_normalised_input_as_in_the_official_network():
    model = PreActResNet18((3, 8, 8), 1, 2, width=4).eval()
    block = model.blocks[1]                              # 4 → 4 channels, stride 1: identity shortcut
    assert block.shortcut is None
    with torch.no_grad():
        block.conv2.weight.zero_()                       # the residual branch adds nothing
        block.bn1.running_mean.fill_(0.5)
        block.bn1.running_var.fill_(4.0)
        x = torch.randn(2, 4, 8, 8)
        torch.testing.assert_close(block(x), block.bn1(x))
        assert not torch.allclose(block(x), x)


def test_gradient_projection_sgd_takes_a_basis_or_a_null_space_with_the_same_step():
    from nullspace.continual.methods import GradientProjectionSGD
    from nullspace.linalg import RelativeRule, null_space

    g = torch.Generator().manual_seed(0)
    old_inputs = torch.randn(3, 6, generator=g, dtype=torch.float64)
    space = null_space(old_inputs.T @ old_inputs, RelativeRule(1e-9))
    steps = []
    for protection in ({"bases": "range"}, {"null_spaces": "space"}):
        layer = torch.nn.Linear(6, 2, bias=False).double()
        with torch.no_grad():
            layer.weight.copy_(torch.randn(2, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
        start = layer.weight.detach().clone()
        kind = next(iter(protection))
        given = {layer.weight: space.range_basis if kind == "bases" else space}
        optimizer = GradientProjectionSGD(layer.parameters(), lr=0.1, momentum=0.9, **{kind: given})
        for _ in range(3):
            optimizer.zero_grad()
            layer(torch.randn(5, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)).square().sum().backward()
            optimizer.step()
        step = layer.weight.detach() - start
        assert (step @ old_inputs.T).abs().max() < 1e-12        # the old inputs' outputs did not move
        steps.append(step)
    assert torch.allclose(steps[0], steps[1], atol=1e-12) and steps[0].abs().max() > 1e-3
    layer = torch.nn.Linear(6, 2, bias=False).double()
    with pytest.raises(ValueError, match="both bases and null_spaces"):
        GradientProjectionSGD(layer.parameters(), lr=0.1, bases={layer.weight: space.range_basis},
                              null_spaces={layer.weight: space})


def test_a_layer_the_papers_rule_leaves_unprotected_is_named_in_a_warning():
    from nullspace.linalg import CovarianceAccumulator

    covariances = TaskCovariances()
    covariances.accumulators["fc"] = CovarianceAccumulator(4)
    # eigenvalues 1, 1.5, 2, 3: all within 10·λ_min, so a = 10 calls every direction null
    covariances.accumulators["fc"].update(torch.diag(torch.tensor([1.0, 1.5, 2.0, 3.0], dtype=torch.float64).sqrt()))
    with pytest.warns(UserWarning, match=r"layer 'fc'.*all 4 directions as null.*not protected"):
        spaces = covariances.null_spaces(MinRatioRule(10.0))
    assert spaces["fc"].null_dim == 4
