"""Bad input around files, settings, the network and the exercise checks: nothing the learner made
is deleted, shipped files are verified when loaded, a hub model name never touches the network, a
typo in a setting is named, and a learner's function cannot change what its check compares with."""

import ast
import contextlib
import copy
import shutil
import socket
import subprocess

import huggingface_hub.constants as hub_constants
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from test_exercises import EXERCISES

from nullspace import data_checksums, settings
from nullspace.course import site
from nullspace.course.checks import lesson06
from nullspace.course.verdict import Verdict
from nullspace.data_checksums import ShippedFileError, sha256, verify_shipped
from nullspace.editing import models
from nullspace.editing.models import ModelNotAvailableError, load_model
from nullspace.editing.world.facts import load_world
from nullspace.paths import DATA_DIR, REPO_ROOT

pytestmark = pytest.mark.bad_input


# --- the site builder deletes nothing it did not make ------------------------------------------------

@pytest.fixture
def fake_sphinx(monkeypatch):
    """Stand in for the Sphinx run (tested by the browser checks): write the landing page only."""
    def run(command, **_):
        output = site.Path(command[-1])
        (output / "docs").mkdir(parents=True, exist_ok=True)
        (output / "docs" / "index.html").write_text("<html></html>", encoding="utf-8")
        return subprocess.CompletedProcess(command, 0, "", "")
    monkeypatch.setattr(site.subprocess, "run", run)


def test_the_site_builder_refuses_a_folder_it_did_not_make(tmp_path, fake_sphinx, capsys):
    folder = tmp_path / "my-documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("three years of work", encoding="utf-8")
    with pytest.raises(site.SiteFolderError, match=r"not empty and was not made by the course site builder "
                                                   r"\(it holds thesis.tex\); nothing was deleted"):
        site.build_site(folder)
    assert site.main([str(folder)]) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.tex"]
    assert (folder / "thesis.tex").read_text(encoding="utf-8") == "three years of work"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine", encoding="utf-8")
    with pytest.raises(site.SiteFolderError, match="is a file, not a folder"):
        site.build_site(a_file)
    assert a_file.read_text(encoding="utf-8") == "mine"


def test_the_site_builder_rebuilds_its_own_folder_and_uses_an_empty_one(tmp_path, fake_sphinx):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert site.build_site(empty) == empty / "index.html"
    assert (empty / site.MARKER).exists()
    (empty / "stale-page.html").write_text("from an earlier build", encoding="utf-8")
    site.build_site(empty)
    assert not (empty / "stale-page.html").exists() and (empty / "index.html").exists()
    fresh = tmp_path / "new" / "site"
    site.build_site(fresh)
    assert (fresh / site.MARKER).exists()


# --- shipped files are verified when loaded -----------------------------------------------------------

@pytest.fixture
def fake_repository(tmp_path, monkeypatch):
    """A copy of data/course-gpt2 and data/world in a repository of its own, with its checksum list."""
    data = tmp_path / "data"
    for part in ("course-gpt2", "world"):
        shutil.copytree(DATA_DIR / part, data / part)
    checksum_file = data / "CHECKSUMS.sha256"

    def record() -> None:
        files = sorted(p for p in data.rglob("*") if p.is_file() and p != checksum_file)
        checksum_file.write_text("".join(f"{sha256(p)}  {p.relative_to(tmp_path).as_posix()}\n" for p in files),
                                 encoding="utf-8")

    record()
    monkeypatch.setattr(data_checksums, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(data_checksums, "CHECKSUM_FILE", checksum_file)
    monkeypatch.setattr(data_checksums, "_VERIFIED", {})
    monkeypatch.setattr(models, "COURSE_MODEL_DIR", data / "course-gpt2")
    return data, record


def test_a_modified_shipped_file_is_named_when_loaded(fake_repository):
    data, _ = fake_repository
    config = data / "course-gpt2" / "config.json"
    config.write_text(config.read_text(encoding="utf-8").replace("}", ', "edited": true}', 1), encoding="utf-8")
    with pytest.raises(ShippedFileError, match=r"data/course-gpt2/config.json differs from its checksum in "
                                               r"data/CHECKSUMS.sha256 .*git checkout -- data/course-gpt2/config.json"):
        load_model("course-gpt2", device="cpu")
    world = data / "world" / "world.json"
    world.write_bytes(world.read_bytes()[:-100])  # truncated
    with pytest.raises(ShippedFileError, match="data/world/world.json differs from its checksum"):
        load_world(data / "world")


def test_a_missing_model_file_gets_the_advice_to_restore_it_with_git(fake_repository):
    data, _ = fake_repository
    (data / "course-gpt2" / "model.safetensors").unlink()
    with pytest.raises(ShippedFileError) as err:
        load_model("course-gpt2", device="cpu")
    message = str(err.value)
    assert "data/course-gpt2/model.safetensors is missing" in message
    assert "ships with the course" in message and "git checkout -- data/course-gpt2/model.safetensors" in message
    assert "hub" not in message and "download" not in message


def test_nan_weights_are_refused_whether_or_not_their_checksum_was_recorded(fake_repository):
    data, record = fake_repository
    path = data / "course-gpt2" / "model.safetensors"
    tensors = load_file(path)
    name = next(n for n in tensors if n.endswith("mlp.c_proj.weight"))
    tensors[name][0, 0] = float("nan")
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(ShippedFileError, match="model.safetensors differs from its checksum"):
        load_model("course-gpt2", device="cpu")
    record()  # as if someone had recorded the broken file with --update
    with pytest.raises(ValueError, match=r"weights of 'course-gpt2' contain NaN or infinite values \(first in "
                                         r"transformer.h.\d.mlp.c_proj.weight\).*git checkout -- data/course-gpt2"):
        load_model("course-gpt2", device="cpu")


def test_files_outside_the_shipped_list_are_not_checked(tmp_path):
    outside = tmp_path / "world"
    outside.mkdir()
    (outside / "world.json").write_text("{}", encoding="utf-8")
    verify_shipped(outside)  # not in data/CHECKSUMS.sha256: nothing to compare with


# --- hub names never touch the network ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpt2-xl", "gtp2-xl"])
def test_a_hub_model_name_never_contacts_the_network(monkeypatch, tmp_path, name):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("the test forbids network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    # huggingface_hub fetches a registry for its user agent once per process, unless a fresh cached copy exists
    from huggingface_hub.utils import _detect_agent
    monkeypatch.setattr(_detect_agent, "_registry", None, raising=False)
    monkeypatch.setattr(hub_constants, "AGENT_HARNESSES_PATH", str(tmp_path / "no-registry.json"), raising=False)
    offline_before = hub_constants.HF_HUB_OFFLINE
    with pytest.raises(ModelNotAvailableError, match=f"the model '{name}' is not in the local Hugging Face cache"):
        load_model(name, device="cpu")
    assert attempts == []
    assert hub_constants.HF_HUB_OFFLINE == offline_before  # the offline switch is the course's, for the load only


# --- settings -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["cdua", "gpu", "cuda:x"])
def test_a_typo_in_nullspace_device_names_the_setting_and_the_valid_values(monkeypatch, value):
    monkeypatch.setenv("NULLSPACE_DEVICE", value)
    with pytest.raises(ValueError, match=f"NULLSPACE_DEVICE='{value}' is not .*'cpu', 'cuda', 'cuda:N'"):
        settings.device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_missing_gpu_is_named(monkeypatch):
    monkeypatch.setenv("NULLSPACE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="NULLSPACE_DEVICE='cuda', but this machine has no such CUDA GPU.*cpu"):
        settings.device()
    with pytest.raises(ValueError, match="device='cuda:1', but this machine has no such CUDA GPU"):
        load_model("course-gpt2", device="cuda:1")


def test_valid_device_settings_are_accepted(monkeypatch):
    monkeypatch.setenv("NULLSPACE_DEVICE", " CPU ")
    assert settings.device() == torch.device("cpu")
    monkeypatch.delenv("NULLSPACE_DEVICE")
    assert settings.device().type in {"cpu", "cuda"}


def test_make_course_binds_to_localhost_explicitly():
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\ncourse: ", 1)[1].split("\n")[1]
    assert "jupyter lab" in recipe and "--ServerApp.ip=127.0.0.1" in recipe


# --- exercise checks hand the learner copies -------------------------------------------------------

def test_check_6_1_is_not_fooled_by_a_learner_changing_its_input_in_place():
    """The issue's case: a wrong formula (C ignored) that overwrites C with I passed, because the
    check computed its reference from the covariance after the learner's call."""
    def euclidean_rank_one(key, residual, covariance):
        covariance.copy_(torch.eye(covariance.shape[0], dtype=covariance.dtype))  # in place
        return torch.outer(residual, key) / (key @ key)

    verdict = lesson06.exercise_6_1(euclidean_rank_one)
    assert not verdict.passed and verdict.implemented
    assert "differs from r (C⁻¹k)ᵀ / (kᵀC⁻¹k)" in verdict.detail


def _corrupt(value) -> None:
    """Overwrite tensors, arrays and modules in place, recursively (what a careless learner might do)."""
    if isinstance(value, torch.Tensor):
        with torch.no_grad():
            if value.dtype == torch.bool:
                value.logical_not_()
            elif value.is_floating_point():
                value.mul_(-3.0).add_(1.0)
            else:
                value.add_(1)
    elif isinstance(value, np.ndarray) and value.flags.writeable:
        value *= -3
    elif isinstance(value, torch.nn.Module):
        for parameter in value.parameters():
            _corrupt(parameter)
    elif isinstance(value, dict):
        for item in value.values():
            _corrupt(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _corrupt(item)


def vandalised(function):
    """``function``, which afterwards overwrites every argument it was given."""
    def vandal(*args, **kwargs):
        result = function(*args, **kwargs)
        with contextlib.suppress(RuntimeError):  # a result inside an autograd graph cannot be copied: keep it
            result = copy.deepcopy(result)
        for value in (*args, *kwargs.values()):
            _corrupt(value)
        return result
    return vandal


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda ex: f"{ex.notebook.stem}:{ex.exercise}")
def test_every_check_passes_a_solution_that_overwrites_its_inputs_afterwards(exercise):
    namespace: dict = {}
    for setup in exercise.setup_sources:
        exec(compile(setup, f"<setup of {exercise.notebook.name}>", "exec"), namespace)  # noqa: S102
    exec(compile(exercise.solution_source, f"<exercise {exercise.exercise}>", "exec"), namespace)  # noqa: S102
    call = ast.parse(exercise.check_source.strip().rstrip(";"), mode="eval").body
    for argument in call.args:
        namespace[argument.id] = vandalised(namespace[argument.id])
    verdict = eval(compile(exercise.check_source.strip().rstrip(";"), "<check>", "eval"), namespace)
    assert isinstance(verdict, Verdict) and verdict.passed, repr(verdict)
