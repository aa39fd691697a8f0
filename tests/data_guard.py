"""A pytest plugin that fails the run when it changed files under a folder (``data/`` here).

Every file under the folder (shipped files, their checksum list and cached statistics; nothing
is left out) is hashed when the session starts and again when it ends. A changed or deleted file
fails the run, naming the file. New files are reported; they fail the run too unless they lie
under one of ``allowed_new`` (a fresh clone has no ``data/cache/``, and the lessons fill it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nullspace.data_checksums import changes, snapshot


class DataGuard:
    """Register with ``config.pluginmanager.register(DataGuard(folder))``."""

    def __init__(self, folder: Path, allowed_new: tuple[str, ...] = ("cache/",), label: str = "data/") -> None:
        self.folder = Path(folder)
        self.allowed_new = allowed_new
        self.label = label
        self.before: dict[str, str] = {}
        self.report: list[str] = []

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.before = snapshot(self.folder)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        found = changes(self.before, snapshot(self.folder))
        unexpected_new = [name for name in found["added"] if not name.startswith(self.allowed_new)]
        self.report = [f"{self.label} guard: {len(self.before)} files hashed before and after the run"]
        self.report += [f"  {kind}: {self.label}{name}" for kind in ("changed", "deleted", "added")
                        for name in found[kind]]
        if found["changed"] or found["deleted"] or unexpected_new:
            self.report.append(f"  FAILED: the test run changed files under {self.label} (restore them with git, "
                               "or delete the new file, and find the test that wrote it)")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for line in self.report:
            terminalreporter.write_line(line)
