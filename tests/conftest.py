"""Session-wide settings of the test suite.

* The ``data/`` guard (:mod:`data_guard`): every file under ``data/`` (shipped files, the checksum
  list and cached statistics alike) is hashed before and after the run; a changed or deleted
  file, or a new file outside ``data/cache/``, fails the run and is named.
* The ``bad_input`` marker: tests that give the package a bad input and assert on the error (or
  on the right value). ``pytest -m bad_input --collect-only -q`` counts them.
"""

from __future__ import annotations

import pytest
import torch
from data_guard import DataGuard

from nullspace.paths import DATA_DIR


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bad_input: a bad input gets a clear error (or the right value)")
    config.pluginmanager.register(DataGuard(DATA_DIR), "nullspace-data-guard")


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
