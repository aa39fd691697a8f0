"""Recorded SHA-256 checksums of the files the course ships in ``data/``.

    python -m nullspace.data_checksums          # verify (exit status 1 on a mismatch)
    python -m nullspace.data_checksums --update # record every shipped file anew

``data/cache/`` (statistics computed on the learner's machine) is not shipped and not recorded.
The loaders call :func:`verify_shipped` on what they read, so a modified or corrupted shipped file
is named when it is loaded, not discovered as a wrong result later; :func:`snapshot` and
:func:`changes` let the test run prove that it changed nothing under ``data/``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from nullspace.paths import DATA_DIR, REPO_ROOT

__all__ = ["CHECKSUM_FILE", "ShippedFileError", "changes", "mismatches", "read_checksums", "record_checksum", "sha256",
           "shipped_files", "snapshot", "verify_shipped", "write_checksums"]

CHECKSUM_FILE = DATA_DIR / "CHECKSUMS.sha256"
_NOT_SHIPPED = ("cache",)


def shipped_files(directory: Path = DATA_DIR) -> list[Path]:
    """Every file under ``data/`` except the checksum list itself and ``data/cache/``."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p != CHECKSUM_FILE
                  and p.relative_to(directory).parts[0] not in _NOT_SHIPPED)


def sha256(path: Path) -> str:
    """The hexadecimal SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checksums(path: Path = CHECKSUM_FILE) -> dict[str, str]:
    """``{repository-relative path: digest}`` from a ``sha256sum``-style list."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m nullspace.data_checksums --update`.")
    records = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            records[name.strip()] = digest
    return records


def write_checksums(path: Path = CHECKSUM_FILE) -> None:
    """Record the digest of every shipped file (``sha256sum -c`` can check the list from the repo root)."""
    _write_records({p.relative_to(REPO_ROOT).as_posix(): sha256(p) for p in shipped_files()}, path)


def _write_records(records: dict[str, str], path: Path) -> None:
    """Write ``{repository-relative path: digest}`` as a ``sha256sum``-style list, sorted by path."""
    path.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(records.items())), encoding="utf-8")


def record_checksum(file: Path, path: Path = CHECKSUM_FILE) -> None:
    """Record the digest of one shipped ``file`` that a course script has just rewritten on purpose
    (``benchmarks/editing.py`` refreshing lesson 7's cached results), leaving every other record
    as it is, so that a file changed by accident still fails the check.

    Raises:
        ValueError: ``file`` is not under ``data/`` (the course ships nothing else).
    """
    file = Path(file).resolve()
    if DATA_DIR.resolve() not in file.parents:
        raise ValueError(f"file must be a shipped file under {DATA_DIR}, got {file}.")
    records = read_checksums(path)
    records[file.relative_to(REPO_ROOT).as_posix()] = sha256(file)
    _write_records(records, path)


def mismatches(path: Path = CHECKSUM_FILE) -> list[str]:
    """Human-readable problems: changed, missing or unrecorded shipped files (empty when all match)."""
    recorded = read_checksums(path)
    problems = []
    for name, digest in recorded.items():
        file = REPO_ROOT / name
        if not file.exists():
            problems.append(f"missing: {name}")
        elif sha256(file) != digest:
            problems.append(f"changed: {name}")
    for file in shipped_files():
        if file.relative_to(REPO_ROOT).as_posix() not in recorded:
            problems.append(f"not recorded: {file.relative_to(REPO_ROOT).as_posix()}")
    return problems


class ShippedFileError(OSError):
    """A file the course ships is missing or differs from its checksum in ``data/CHECKSUMS.sha256``."""


# Files found intact in this process, with the (size, modification time) they had then.
_VERIFIED: dict[Path, tuple[int, int]] = {}


def _restore_advice(name: str) -> str:
    return f"It ships with the course: restore it with `git checkout -- {name}` (from the repository root)"


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def verify_shipped(path: Path, checksum_file: Path | None = None) -> None:
    """Check every shipped file at or under ``path`` against its recorded checksum.

    Files that are not recorded (a world generated into another folder, say) are not checked.
    A file is hashed once per process unless its size or modification time changes.

    Raises:
        ShippedFileError: naming each missing or modified file and how to restore it.
    """
    checksum_file = CHECKSUM_FILE if checksum_file is None else Path(checksum_file)
    path = Path(path).resolve()
    try:
        prefix = path.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return  # not inside the repository: nothing the course ships
    recorded = read_checksums(checksum_file)
    names = [name for name in recorded if name == prefix or name.startswith(prefix.rstrip("/") + "/")]
    problems = []
    for name in names:
        file = REPO_ROOT / name
        if not file.exists():
            problems.append(f"{name} is missing. {_restore_advice(name)}.")
            continue
        stat = file.stat()
        if _VERIFIED.get(file) == (stat.st_size, stat.st_mtime_ns):
            continue
        if sha256(file) != recorded[name]:
            problems.append(
                f"{name} differs from its checksum in {_shown(checksum_file)} "
                f"(modified or corrupted). {_restore_advice(name)}; if you regenerated it on purpose, record it "
                "with `python -m nullspace.data_checksums --update`.")
            continue
        _VERIFIED[file] = (stat.st_size, stat.st_mtime_ns)
    if problems:
        raise ShippedFileError("\n".join(problems))


def snapshot(directory: Path = DATA_DIR) -> dict[str, str]:
    """``{path relative to directory: SHA-256}`` of every file under ``directory`` (nothing left out:
    shipped files, the checksum list and cached statistics alike)."""
    directory = Path(directory)
    if not directory.exists():
        return {}
    return {p.relative_to(directory).as_posix(): sha256(p) for p in sorted(directory.rglob("*")) if p.is_file()}


def changes(before: dict[str, str], after: dict[str, str]) -> dict[str, list[str]]:
    """What differs between two :func:`snapshot` results: ``changed``, ``deleted`` and ``added`` paths."""
    return {
        "changed": sorted(name for name in before.keys() & after.keys() if before[name] != after[name]),
        "deleted": sorted(before.keys() - after.keys()),
        "added": sorted(after.keys() - before.keys()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="record the current files")
    args = parser.parse_args(argv)
    if args.update:
        write_checksums()
        print(f"recorded {len(shipped_files())} files in {CHECKSUM_FILE}")
        return 0
    problems = mismatches()
    for problem in problems:
        print(problem)
    print("all shipped files match their checksums" if not problems else
          "shipped files differ from data/CHECKSUMS.sha256: restore them from git, or run "
          "`python -m nullspace.data_checksums --update` if you changed them on purpose")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
