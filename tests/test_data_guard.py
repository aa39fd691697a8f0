"""The test run's data/ guard (tests/data_guard.py, registered by tests/conftest.py): a run that
changes, deletes or adds a file under the guarded folder fails, naming the file; new cached
statistics under cache/ are reported but allowed."""

import os
import subprocess
import sys
import textwrap

import pytest

from nullspace.data_checksums import (
    CHECKSUM_FILE,
    changes,
    read_checksums,
    record_checksum,
    snapshot,
    verify_shipped,
)
from nullspace.paths import DATA_DIR, REPO_ROOT


def test_the_shipped_files_match_their_checksums():
    verify_shipped(DATA_DIR)


def test_record_checksum_updates_one_file_and_leaves_the_others(tmp_path):
    """A script that rewrites a shipped file on purpose records it; every other record stays, so a
    file changed by accident still fails the check."""
    records = read_checksums()
    lesson_results = DATA_DIR / "results" / "editing_protocol.json"
    name = lesson_results.relative_to(REPO_ROOT).as_posix()
    stale = {**records, name: "0" * 64, "data/course-gpt2/config.json": "1" * 64}
    checksums = tmp_path / CHECKSUM_FILE.name
    checksums.write_text("".join(f"{digest}  {n}\n" for n, digest in stale.items()), encoding="utf-8")
    record_checksum(lesson_results, checksums)
    after = read_checksums(checksums)
    assert after[name] == records[name]
    assert after["data/course-gpt2/config.json"] == "1" * 64  # not blessed along the way
    assert set(after) == set(records)
    with pytest.raises(ValueError, match="shipped file under"):
        record_checksum(REPO_ROOT / "README.md", checksums)


def test_snapshot_and_changes_see_every_kind_of_change(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    (tmp_path / "cache" / "stats.npz").write_bytes(b"1")
    before = snapshot(tmp_path)
    (tmp_path / "a.txt").write_text("b", encoding="utf-8")
    (tmp_path / "cache" / "stats.npz").unlink()
    (tmp_path / "new.txt").write_text("n", encoding="utf-8")
    assert changes(before, snapshot(tmp_path)) == {"changed": ["a.txt"], "deleted": ["cache/stats.npz"],
                                                   "added": ["new.txt"]}


@pytest.mark.parametrize(("action", "fails"), [
    ("(folder / 'shipped.txt').write_text('edited')", True),
    ("(folder / 'cache' / 'stats.npz').write_bytes(b'other')", True),
    ("(folder / 'cache' / 'stats.npz').unlink()", True),
    ("(folder / 'stray.txt').write_text('new')", True),
    ("(folder / 'cache' / 'new.npz').write_bytes(b'new')", False),
    ("folder.exists()", False),
])
def test_the_data_guard_fails_a_run_that_changes_the_guarded_folder(tmp_path, action, fails):
    folder = tmp_path / "guarded"
    (folder / "cache").mkdir(parents=True)
    (folder / "shipped.txt").write_text("shipped", encoding="utf-8")
    (folder / "cache" / "stats.npz").write_bytes(b"stats")
    run = tmp_path / "run"
    run.mkdir()
    (run / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO_ROOT / 'tests')!r})
        from data_guard import DataGuard

        def pytest_configure(config):
            config.pluginmanager.register(DataGuard(Path({str(folder)!r})), "guard")
        """), encoding="utf-8")
    (run / "test_act.py").write_text(textwrap.dedent(f"""
        from pathlib import Path

        def test_act():
            folder = Path({str(folder)!r})
            {action}
        """), encoding="utf-8")
    environment = os.environ | {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # a bare pytest starts in 2 s, not 20
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(run)],
                            cwd=run, capture_output=True, text=True, check=False, env=environment)
    assert ("1 passed" in result.stdout), result.stdout + result.stderr
    assert (result.returncode != 0) == fails, result.stdout
    if fails:
        assert "FAILED: the test run changed files under data/" in result.stdout
