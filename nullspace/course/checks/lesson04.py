"""Checks for lesson 4, Adam-NSCL. Each runs the learner's code on fresh inputs (the course CNN
with fresh weights, a short run of the course benchmark) and compares it with the package's tested
version: :class:`nullspace.continual.methods.AdamNSCL`, :class:`~nullspace.continual.feature_covariance.
TaskCovariances` and :func:`nullspace.continual.trainer.train_sequence` with
:class:`~nullspace.continual.methods.AdamNSCLMethod`."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from nullspace.capture import record_covariances
from nullspace.continual import recipes
from nullspace.continual.benchmarks import Benchmark, Task
from nullspace.continual.feature_covariance import TaskCovariances
from nullspace.continual.methods import AdamNSCL, AdamNSCLMethod
from nullspace.continual.models import model_for
from nullspace.continual.trainer import TrainConfig, train_sequence
from nullspace.course.verdict import exercise_check
from nullspace.linalg import CovarianceAccumulator, EnergyRule, MinRatioRule, RelativeRule, null_space

__all__ = ["exercise_4_1", "exercise_4_2", "exercise_4_3", "exercise_4_4", "exercise_4_5", "exercise_4_6"]


def _course_cnn(seed: int, tasks: int = 2):
    torch.manual_seed(seed)
    return model_for((3, 8, 8), tasks, 3)


def _layer_with_null_space(seed: int):
    g = torch.Generator().manual_seed(seed)
    old = torch.randn(50, 4, generator=g) @ torch.randn(4, 10, generator=g)
    ns = null_space(old.double().T @ old.double(), RelativeRule(1e-9))
    return ns, g


@exercise_check("4.1", "the Adam-NSCL optimizer's step (Eq. 6)")
def exercise_4_1(optimizer_class) -> str:
    model = _course_cnn(41)
    layers = model.shared_layers()
    g = torch.Generator().manual_seed(41)
    old_images = torch.randn(2, 3, 8, 8, generator=g)   # two images: conv1's 27-dim patches fill their space
    new_images, new_labels = torch.randn(7, 3, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2, 0])
    with torch.no_grad(), record_covariances(layers) as accumulators:
        model(old_images, 0)
    spaces = {name: null_space(acc.covariance, RelativeRule(1e-9), allow_empty=True) for name, acc in accumulators.items()}
    assert spaces["conv1"].null_dim == 0 and spaces["conv2"].null_dim > 0, "internal: the check's null spaces changed"
    with torch.no_grad():
        old_features = model.features(old_images)
    model.heads[0].requires_grad_(False)   # an earlier head: in the optimizer, but it never gets a gradient
    reference = copy.deepcopy(model)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}

    def groups(net):
        shared = list(net.shared_parameters())
        heads = list(net.heads[1].parameters()) + list(net.heads[0].parameters())
        return [{"params": shared, "lr": 1e-2}, {"params": heads, "lr": 3e-2}]

    ref_layers = reference.shared_layers()
    expected_optimizer = AdamNSCL(groups(reference), lr=1e-2,
                                  null_spaces={ref_layers[name].weight: space for name, space in spaces.items()})
    mine = optimizer_class(groups(model), null_bases={layers[name].weight: space.basis.clone()
                                                      for name, space in spaces.items()}, lr=1e-2)
    for _ in range(4):
        for net, optimizer in ((model, mine), (reference, expected_optimizer)):
            optimizer.zero_grad()   # gradients become None (PyTorch ≥ 2)
            F.cross_entropy(net(new_images, 1), new_labels).backward()
            optimizer.step()
    for (name, got), (_, expected) in zip(model.named_parameters(), reference.named_parameters()):
        moved = float((expected.detach() - initial[name]).abs().max())
        assert torch.allclose(got.detach(), expected.detach(), atol=1e-6, rtol=1e-5), (
            f"after four steps {name} differs from AdamNSCL (which moved it by {moved:.2g} at most). Keep Adam's "
            "moments of the raw gradient, bias-correct both, form the update m̂ / (√v̂ + ε), and only then project it "
            "(weight viewed as (out, d), update @ U2 @ U2ᵀ); each group steps with its own lr.")
    assert torch.equal(model.conv1.weight, initial["conv1.weight"]), (
        "conv1's null space is empty (k = 0): its projected update is zero and the weight must not move.")
    with torch.no_grad():
        change = float(torch.linalg.norm(model.features(old_images) - old_features) / torch.linalg.norm(old_features))
    assert change < 1e-5, f"the old images' features moved by {change:.1e} (relative)."
    return ("four steps match AdamNSCL on the course CNN (an empty null space, two learning rates, a head without "
            "gradient); the old task's features moved by less than 1e-5 (relative).")


@exercise_check("4.2", "share of an update that reaches old inputs")
def exercise_4_2(range_share) -> str:
    ns, g = _layer_with_null_space(42)
    u1 = ns.range_basis
    inside = torch.randn(3, 10, generator=g, dtype=torch.float64) @ ns.projector()
    outside = torch.randn(3, 4, generator=g, dtype=torch.float64) @ u1.T
    for update, expected in ((inside, 0.0), (outside, 1.0), (inside + outside,
                                                             float(outside.norm() / (inside + outside).norm()))):
        got = float(range_share(update, u1))
        assert abs(got - expected) < 1e-6, \
            f"got {got:.4f}, expected {expected:.4f}: ‖update U1‖_F / ‖update‖_F."
    return ""


def _synthetic_task(index: int, n: int, generator: torch.Generator, offset: float) -> Task:
    x = offset + torch.rand(n, 3, 8, 8, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return Task(index, (3 * index, 3 * index + 1, 3 * index + 2), x, y, x[:5], y[:5])


def _projectors_equal(bases: dict, spaces: dict, what: str) -> None:
    assert set(bases) == set(spaces), f"{what}: return a basis for every shared layer {sorted(spaces)}, got {sorted(bases)}."
    for name, space in spaces.items():
        basis = torch.as_tensor(bases[name]).to(torch.float64)
        assert tuple(basis.shape) == tuple(space.basis.shape), (
            f"{what}, {name}: expected U2 of shape {tuple(space.basis.shape)} (d × k, the null directions as columns), "
            f"got {tuple(basis.shape)}.")
        error = float((basis @ basis.T - space.projector()).abs().max()) if space.null_dim else 0.0
        assert error < 1e-6, (
            f"{what}, {name}: U2 U2ᵀ differs from the package's by {error:.1e}: decompose the covariance of every "
            "task so far (sums and counts added across tasks, Eq. 4), not of this task alone.")


@exercise_check("4.3", "the null spaces after a task (Eq. 4–5)", hand_copies=False)  # the check inspects the model it handed over
def exercise_4_3(add_task) -> str:
    model = _course_cnn(43, tasks=3)
    g = torch.Generator().manual_seed(43)
    tasks = [_synthetic_task(0, 300, g, 0.0), _synthetic_task(1, 41, g, 2.0), _synthetic_task(2, 5, g, -1.0)]
    reference = TaskCovariances()
    accumulators: dict = {}
    rules = (EnergyRule(0.95), RelativeRule(1e-12), MinRatioRule(30.0))
    for task, rule in zip(tasks, rules):
        model.train()
        reference.add_task(model, task)
        accumulators, bases = add_task(model, task, accumulators, rule)
        assert model.training, "put the model back in training mode when the pass is done (it was training)."
        assert not any(layer._forward_hooks for layer in model.shared_layers().values()), \
            "hooks are still registered on the shared layers after the pass: remove them."
        _projectors_equal(bases, reference.null_spaces(rule), f"after task {task.index + 1} ({rule.describe()})")
        for name, acc in accumulators.items():
            assert isinstance(acc, CovarianceAccumulator), f"accumulators[{name!r}] must stay a CovarianceAccumulator."
    assert any(space.null_dim == 0 for space in reference.null_spaces(RelativeRule(1e-12)).values()), \
        "internal: the check no longer has a layer without a null space"
    return ("three tasks of 300, 41 and 5 images match TaskCovariances under three selection rules, one of them "
            "leaving a layer without a null space.")


@functools.lru_cache(maxsize=1)
def _quick_digits() -> Benchmark:
    """The first three split-digits tasks with 150 training images each (a check takes seconds)."""
    full = recipes.benchmark("digits", seed=0)
    tasks = tuple(dataclasses.replace(task, train_x=task.train_x[:150], train_y=task.train_y[:150])
                  for task in full.tasks[:3])
    return Benchmark(full.name, tasks, full.input_shape, full.classes_per_task)


@exercise_check("4.4", "the per-task loop of Adam-NSCL")
def exercise_4_4(train_in_null_space) -> str:
    bench = _quick_digits()
    make_model = recipes.model_factory("digits", bench)
    settings = [dict(epochs=2, batch_size=50, rule=EnergyRule(0.95), lr=1e-3, head_lr=3e-3, seed=4),
                dict(epochs=1, batch_size=32, rule=EnergyRule(0.9), lr=2e-3, head_lr=2e-3, seed=5)]
    for s in settings:
        method = AdamNSCLMethod(rule=s["rule"], lr=s["lr"], head_lr=s["head_lr"])
        expected, expected_model = train_sequence(bench, method, make_model, TrainConfig(
            epochs=s["epochs"], batch_size=s["batch_size"], seed=s["seed"]))
        made = []

        def recording_factory():
            made.append(make_model())
            return made[-1]

        got = np.asarray(train_in_null_space(bench, recording_factory, s["epochs"], s["batch_size"], s["seed"],
                                             s["rule"], s["lr"], s["head_lr"]), dtype=float)
        where = f"3 digits tasks of 150 images, {s['epochs']} epoch(s), batches of {s['batch_size']}, seed {s['seed']}"
        assert got.shape == expected.accuracy.shape, (
            f"{where}: return the {expected.accuracy.shape} accuracy matrix R (row t: after task t), got {got.shape}.")
        assert np.array_equal(np.isnan(got), np.isnan(expected.accuracy)), (
            f"{where}: R[t, j] is filled for j ≤ t only (NaN above the diagonal).")
        gap = float(np.nanmax(np.abs(got - expected.accuracy)))
        assert gap <= 1.0, (
            f"{where}: R differs from the package's run by up to {gap:.1f} points. Seed everything, build the model, "
            "then one torch.Generator for the batch order; per task: freeze the other heads, a fresh optimizer with "
            "the null spaces of the tasks before it, the epochs, then add the task's inputs and find new null spaces.")
        assert len(made) == 1, f"{where}: build the model once, with make_model() (it was called {len(made)} times)."
        for (name, mine), (_, theirs) in zip(made[0].named_parameters(), expected_model.named_parameters()):
            moved = float(torch.linalg.norm(theirs.detach() - mine.detach()) / torch.linalg.norm(theirs.detach()))
            assert moved < 1e-4, (
                f"{where}: after the last task {name} differs from the package's by {moved:.1e} (relative). Check the "
                "fresh optimizer per task (Adam's moments reset), the null spaces of every earlier task, and that "
                "task 1 trains with plain Adam.")
    return ("R and the trained weights match the package's Adam-NSCL on 3 digits tasks under two "
            "settings.")


def _covariance_with_spectrum(eigenvalues: list[float], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))[0]
    covariance = basis @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ basis.T
    return (covariance + covariance.T) / 2


@exercise_check("4.5", "the paper's null space of a covariance")
def exercise_4_5(min_ratio_null_basis) -> str:
    cases = [("a full-rank covariance, a = 30", _covariance_with_spectrum([1e-3, 2e-3, 2.5e-2, 0.1, 0.5, 1.0, 2.0], 45), 30.0),
             ("a full-rank covariance, a = 10", _covariance_with_spectrum([1e-3, 2e-3, 2.5e-2, 0.1, 0.5, 1.0, 2.0], 46), 10.0),
             ("a rank-3 covariance whose smallest computed eigenvalue is negative (round-off)",
              _covariance_with_spectrum([-1e-14, 2e-14, 5e-14, 3e-13, 1.0, 2.0, 3.0], 47), 10.0)]
    for what, covariance, a in cases:
        eigenvalues = torch.linalg.eigvalsh(covariance)
        assert "negative" not in what or eigenvalues[0] < 0, "internal: the check's covariance changed"
        expected = null_space(covariance, MinRatioRule(a), allow_empty=True)
        got = torch.as_tensor(min_ratio_null_basis(covariance.clone(), a)).to(torch.float64)
        assert got.ndim == 2 and got.shape[0] == covariance.shape[0], (
            f"{what}: return U2 of shape (d, k) = ({covariance.shape[0]}, k), got {tuple(got.shape)}.")
        assert got.shape[1] == expected.null_dim, (
            f"{what}: the rule keeps {expected.null_dim} null directions, you returned {got.shape[1]}. The paper's "
            "SVD gives singular values σ = |λ|: compare them, not the signed eigenvalues, with a · σ_min.")
        error = float((got @ got.T - expected.projector()).abs().max())
        assert error < 1e-8, f"{what}: U2 U2ᵀ differs from the package's by {error:.1e}."
    return "matches MinRatioRule on two full-rank covariances and on a rank-deficient one with a negative eigenvalue."
