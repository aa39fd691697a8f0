"""Benchmarks: shapes and labels, determinism, and the CIFAR-100 loader on a fake data set."""

import pickle

import numpy as np
import pytest
import torch

from nullspace.continual.benchmarks import colour_gratings, load_benchmark, split_cifar100, split_digits


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_split_digits_has_five_two_class_tasks():
    bench = split_digits()
    assert bench.num_tasks == 5 and bench.input_shape == (1, 8, 8)
    assert [t.classes for t in bench.tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    for task in bench.tasks:
        assert task.train_x.shape[1:] == (1, 8, 8) and task.train_x.max() <= 1.0
        assert set(task.train_y.tolist()) == set(task.test_y.tolist()) == {0, 1}
    assert sum(len(t.train_y) + len(t.test_y) for t in bench.tasks) == 1797


def test_colour_gratings_are_deterministic_and_colour():
    a, b = colour_gratings(num_tasks=3, train_per_class=5, test_per_class=4, seed=7), \
        colour_gratings(num_tasks=3, train_per_class=5, test_per_class=4, seed=7)
    assert a.num_tasks == 3 and a.input_shape == (3, 16, 16)
    for ta, tb in zip(a.tasks, b.tasks):
        assert torch.equal(ta.train_x, tb.train_x) and torch.equal(ta.test_y, tb.test_y)
        assert ta.train_x.shape == (10, 3, 16, 16) and ta.test_x.shape == (8, 3, 16, 16)
    other = colour_gratings(num_tasks=3, train_per_class=5, test_per_class=4, seed=8)
    assert not torch.equal(a.tasks[0].train_x, other.tasks[0].train_x)


def write_fake_cifar100(folder, n_train=200, n_test=100, seed=0):
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 100
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": labels.tolist(), b"coarse_labels": (labels // 5).tolist()}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    return folder


def test_cifar100_loader_on_a_fake_data_set(tmp_path, monkeypatch):
    write_fake_cifar100(tmp_path)
    bench = split_cifar100(tmp_path)
    assert bench.num_tasks == 10 and bench.classes_per_task == 10 and bench.input_shape == (3, 32, 32)
    first = bench.tasks[0]
    assert first.classes == tuple(range(10))
    assert first.train_x.shape == (20, 3, 32, 32) and first.test_x.shape == (10, 3, 32, 32)
    assert set(first.train_y.tolist()) == set(range(10))
    # the layout is channel-major, like the archive: pixel (c, i, j) is data[c*1024 + i*32 + j]
    with open(tmp_path / "train", "rb") as handle:
        raw = pickle.load(handle)[b"data"]
    expected = (raw[0, 1024 + 5 * 32 + 7] / 255.0 - 0.4865) / 0.2564
    assert first.train_x[0, 1, 5, 7].item() == pytest.approx(expected, rel=1e-5)
    # behind the setting
    monkeypatch.setenv("NULLSPACE_CL_BENCHMARK", "cifar100")
    monkeypatch.setenv("NULLSPACE_CIFAR100_DIR", str(tmp_path))
    assert load_benchmark().name == "10-split CIFAR-100"


def test_missing_cifar100_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="NULLSPACE_CIFAR100_DIR"):
        split_cifar100(tmp_path / "nowhere")


def test_unknown_benchmark_lists_the_choices():
    with pytest.raises(ValueError, match="digits, gratings, cifar100"):
        load_benchmark("mnist")


def test_cifar100_runs_end_to_end_with_a_small_resnet_and_adam_nscl(tmp_path):
    from nullspace.continual.methods import AdamNSCLMethod
    from nullspace.continual.models import PreActResNet18
    from nullspace.continual.trainer import TrainConfig, train_sequence

    bench = split_cifar100(write_fake_cifar100(tmp_path)).subset(2)
    method = AdamNSCLMethod(lr=1e-3)
    result, model = train_sequence(bench, method, lambda: PreActResNet18(bench.input_shape, 2, 10, width=4),
                                   TrainConfig(epochs=1, batch_size=10))
    assert result.accuracy.shape == (2, 2) and not np.isnan(result.accuracy[1]).any()
    assert len(method.null_dims) == 2 and set(method.null_dims[0]) == set(model.shared_layers())
    assert model.normalisation_frozen
