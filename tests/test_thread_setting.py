"""NULLSPACE_THREADS sets torch's CPU thread count once, when the package is imported."""

import os
import subprocess
import sys

import pytest
import torch

from nullspace import settings


def test_unset_or_empty_keeps_torchs_default(monkeypatch):
    monkeypatch.delenv("NULLSPACE_THREADS", raising=False)
    assert settings.threads() is None
    monkeypatch.setenv("NULLSPACE_THREADS", " ")
    assert settings.threads() is None


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5"])
def test_a_bad_value_names_the_setting(monkeypatch, text):
    monkeypatch.setenv("NULLSPACE_THREADS", text)
    with pytest.raises(ValueError, match=f"NULLSPACE_THREADS must be a positive integer.*{text!r}"):
        settings.threads()


def test_apply_threads_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("NULLSPACE_THREADS", "1")
        assert settings.apply_threads() == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("count", [1, 3])
def test_importing_the_package_applies_the_setting(count):
    env = os.environ | {"NULLSPACE_THREADS": str(count)}
    code = "import torch, nullspace.linalg; print(torch.get_num_threads())"
    printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == str(count)
