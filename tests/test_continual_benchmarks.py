"""Benchmarks: shapes and labels, determinism, and the CIFAR-100 loader on fake files in the
official format (and its refusal of a crafted pickle)."""

import io
import pickle

import numpy as np
import pytest
import torch

from nullspace.continual.benchmarks import (
    colour_gratings,
    load_benchmark,
    mixed_digits,
    scrambled_digits,
    split_digits,
)
from nullspace.continual.cifar100 import read_cifar100_file, split_cifar100

pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_scrambled_digits_put_each_digit_on_its_own_sensor_pixels():
    bench = scrambled_digits(num_tasks=3, noise=0.0, seed=5)
    assert bench.num_tasks == 3 and bench.input_shape == (1, 16, 16) and bench.classes_per_task == 10
    used = []
    for task in bench.tasks:
        assert task.train_x.shape == (1257, 1, 16, 16) and task.test_x.shape == (540, 1, 16, 16)
        assert task.classes == tuple(range(10)) and set(task.train_y.tolist()) == set(range(10))
        active = task.train_x.flatten(1).abs().sum(0) > 0
        assert int(active.sum()) <= 64          # without noise only the task's 64 sensor pixels carry ink
        used.append(active)
    # the same digit in every task, its 64 pixels on other sensor places
    first, second = (bench.tasks[j].train_x[0].flatten().sort().values for j in (0, 1))
    assert torch.equal(first, second) and float(first.max()) <= 1.0
    assert torch.equal(bench.tasks[0].train_y, bench.tasks[2].train_y)
    assert not torch.equal(used[0], used[1]) and bool((used[0] & used[1]).any())
    noisy = scrambled_digits(num_tasks=2, noise=0.02, seed=5)
    assert float(noisy.tasks[0].train_x.flatten(1)[:, ~used[0]].std()) == pytest.approx(0.02, rel=0.05)
    assert torch.equal(noisy.tasks[1].test_x, scrambled_digits(num_tasks=2, noise=0.02, seed=5).tasks[1].test_x)


class OfficialFormatPickler(pickle._Pickler):
    """Writes a pickle the way the official archive's files were written (Python 2, NumPy 1):
    strings as Python 2 byte strings, NumPy's reconstructor under ``numpy.core.multiarray``."""

    dispatch = dict(pickle._Pickler.dispatch)  # noqa: RUF012 (the pure-Python pickler's dispatch table)

    def save_python2_string(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        size = len(raw)
        self.write(pickle.SHORT_BINSTRING + bytes([size]) + raw if size < 256
                   else pickle.BINSTRING + size.to_bytes(4, "little") + raw)
        self.memoize(obj)

    dispatch[bytes] = save_python2_string
    dispatch[str] = save_python2_string

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", "") == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[type(len)] = save_global


def write_official_format(path, batch):
    buffer = io.BytesIO()
    OfficialFormatPickler(buffer, protocol=2).dump(batch)
    path.write_bytes(buffer.getvalue())


def write_fake_cifar100(folder, n_train=200, n_test=100, seed=0):
    """A tiny CIFAR-100 in the official format: ``train`` and ``test`` with the official keys."""
    rng = np.random.default_rng(seed)
    for name, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 100
        batch = {b"filenames": [f"image_{i}.png".encode() for i in range(n)], b"batch_label": f"{name} batch".encode(),
                 b"fine_labels": labels.tolist(), b"coarse_labels": (labels // 5).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        write_official_format(folder / name, batch)
    write_official_format(folder / "meta", {b"fine_label_names": [f"class {i}".encode() for i in range(100)],
                                             b"coarse_label_names": [f"group {i}".encode() for i in range(20)]})
    return folder


def test_a_file_in_the_official_format_loads(tmp_path):
    write_fake_cifar100(tmp_path, n_train=7, n_test=3)
    assert (tmp_path / "train").read_bytes().startswith(b"\x80\x02}")
    assert b"numpy.core.multiarray\n_reconstruct" in (tmp_path / "train").read_bytes()
    images, labels = read_cifar100_file(tmp_path / "train")
    assert images.dtype == torch.uint8 and images.shape == (7, 3, 32, 32)
    assert labels.tolist() == list(range(7))
    # a file written by today's pickle (protocol 4, NumPy 2's module names) loads too
    (tmp_path / "modern").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [5, 99]}))
    assert read_cifar100_file(tmp_path / "modern")[1].tolist() == [5, 99]


def test_a_crafted_pickle_is_refused_before_it_runs_anything(tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "train"
    # the classic payload: GLOBAL os.system, then REDUCE calls it with a shell command
    crafted.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(ValueError, match=r"not a CIFAR-100 python file: it asks for os\.system, which that format never holds"):
        read_cifar100_file(crafted)
    assert not marker.exists()

    class Payload:
        def __reduce__(self):
            return (eval, (f"open({str(marker)!r}, 'w').close()",))

    crafted.write_bytes(pickle.dumps({b"data": Payload(), b"fine_labels": []}))
    with pytest.raises(ValueError, match="asks for builtins.eval"):
        read_cifar100_file(crafted)
    assert not marker.exists()
    # an array of Python objects could hide one too: refused
    crafted.write_bytes(pickle.dumps({b"data": np.array([None, 1], dtype=object), b"fine_labels": [0, 1]}))
    with pytest.raises(ValueError, match="array of Python objects"):
        read_cifar100_file(crafted)


@pytest.mark.parametrize("content, message", [
    (b"", "truncated or not a pickle"),
    (b"\x80\x02}q\x00(U\x04data", "truncated or not a pickle"),
    (pickle.dumps([1, 2]), "holds a list, not a dict"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "no fine_labels entry"),
    (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}), r"shape \(n, 3072\)"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"fine_labels": [0, 1]}), "not a uint8 array"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0]}), "list of 2 integers"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100]}), "span 0..100"),
])
def test_a_malformed_cifar_file_gets_a_clear_error(tmp_path, content, message):
    path = tmp_path / "test"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_cifar100_file(path)
    assert str(path) in str(info.value) and "cifar.html" in str(info.value)


def test_cifar100_loader_on_a_fake_data_set(tmp_path, monkeypatch):
    write_fake_cifar100(tmp_path)
    bench = split_cifar100(tmp_path)
    assert bench.num_tasks == 10 and bench.classes_per_task == 10 and bench.input_shape == (3, 32, 32)
    first = bench.tasks[0]
    assert first.classes == tuple(range(10))
    assert first.train_x.shape == (20, 3, 32, 32) and first.test_x.shape == (10, 3, 32, 32)
    assert set(first.train_y.tolist()) == set(range(10))
    # the layout is channel-major, like the archive: pixel (c, i, j) is data[c*1024 + i*32 + j]
    raw = read_cifar100_file(tmp_path / "train")[0].reshape(-1, 3072).numpy()
    expected = (raw[0, 1024 + 5 * 32 + 7] / 255.0 - 0.487) / 0.256
    assert first.train_x[0, 1, 5, 7].item() == pytest.approx(expected, rel=1e-5)
    # behind the setting
    monkeypatch.setenv("NULLSPACE_CL_BENCHMARK", "cifar100")
    monkeypatch.setenv("NULLSPACE_CIFAR100_DIR", str(tmp_path))
    assert load_benchmark().name == "10-split CIFAR-100"


def test_missing_cifar100_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="NULLSPACE_CIFAR100_DIR"):
        split_cifar100(tmp_path / "nowhere")


def test_a_mixing_sensor_keeps_each_digit_whole_in_its_own_random_subspace():
    scrambled, mixed = scrambled_digits(num_tasks=2, noise=0.0, seed=5), mixed_digits(num_tasks=2, noise=0.0, seed=5)
    flat = lambda x: x.flatten(1).double()
    for s_task, m_task in zip(scrambled.tasks, mixed.tasks, strict=True):
        assert torch.equal(s_task.train_y, m_task.train_y)
        # an orthonormal sensor keeps every distance, so the two sensors differ only by a rotation
        distances = lambda x: torch.cdist(flat(x[:50]), flat(x[:50]))
        torch.testing.assert_close(distances(m_task.train_x), distances(s_task.train_x), atol=1e-5, rtol=0)
        assert torch.linalg.matrix_rank(flat(m_task.train_x), rtol=1e-5) <= 64   # float32 round-off aside
        assert (flat(m_task.train_x).abs() > 1e-3).float().mean() > 0.9     # every reading carries the digit
    a, b = (torch.linalg.svd(flat(task.train_x), full_matrices=False)[2][:40] for task in mixed.tasks)
    assert torch.linalg.matrix_norm(a @ b.T, ord=2) < 0.9      # the two tasks' subspaces differ
    assert load_benchmark("mixed", seed=5).num_tasks == 20


def test_unknown_benchmark_lists_the_choices():
    with pytest.raises(ValueError, match="digits, gratings, scrambled, mixed, cifar100"):
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


def test_the_papers_cifar100_recipe_is_the_official_run():
    from nullspace.continual import recipes

    config = recipes.train_config("cifar100")
    assert (config.epochs, config.batch_size, config.lr_milestones, config.lr_gamma, config.augmentation) == \
        (80, 32, (30, 60), 0.5, "crop-flip")
    assert not config.freeze_statistics_after_first_task          # the official code lets them follow each task
    paper = recipes.course_methods("cifar100")["adam-nscl-paper"]()
    assert (paper.rule.a, paper.lr, paper.later_lr, paper.head_lr) == (10.0, 1e-4, 5e-5, 1e-3)
    assert (paper.normalisation, paper.normalisation_lr, paper.normalisation_ewc, paper.weight_decay) == \
        ("ewc", 5e-4, 100.0, 5e-5)
    assert paper.scale_by_frobenius and paper.covariances.batch_means and paper.covariances.batch_size == 32
    assert paper.eps_placement == "official"


def test_the_cifar100_benchmark_runs_end_to_end_on_a_tiny_fake_data_set(tmp_path, monkeypatch):
    """benchmarks/continual.py with NULLSPACE_CL_BENCHMARK=cifar100 on files in the official format:
    the paper's run (ResNet-18 at a small width, 2 tasks, 2 epochs with a milestone after the
    first, crop-and-flip, batch-norm EWC, batch-mean covariance, scaled projector) and GPM."""
    import importlib.util
    import json

    from nullspace.paths import REPO_ROOT

    (tmp_path / "cifar").mkdir()
    write_fake_cifar100(tmp_path / "cifar", n_train=300, n_test=100)
    monkeypatch.setenv("NULLSPACE_CL_BENCHMARK", "cifar100")
    monkeypatch.setenv("NULLSPACE_CIFAR100_DIR", str(tmp_path / "cifar"))
    spec = importlib.util.spec_from_file_location("continual_benchmark", REPO_ROOT / "benchmarks" / "continual.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "continual.json"
    assert script.main(["--seeds", "0", "--epochs", "2", "--num-tasks", "2", "--resnet-width", "4",
                        "--methods", "adam-nscl-paper", "gpm", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    names = {row["method"]: row for row in report["rows"]}
    assert set(names) == {"adam-nscl-paper", "gpm"} and report["benchmarks"]["cifar100"]["seeds"] == [0]
    paper = names["adam-nscl-paper"]
    assert paper["benchmark"] == "cifar100" and paper["name"] == "Adam-NSCL (paper, the official CIFAR-100 run)"
    for row in names.values():
        for field in ("acc", "bwt", "forgetting", "plasticity"):
            assert set(row[field]) == {"mean", "std"} and np.isfinite(row[field]["mean"])
    matrix = np.array(report["runs"][0]["accuracy"])
    assert matrix.shape == (2, 2) and (matrix[np.tril_indices(2)] >= 0).all()
