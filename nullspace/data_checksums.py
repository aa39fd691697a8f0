"""Recorded SHA-256 checksums of the files the course ships in ``data/``.

    python -m nullspace.data_checksums          # verify (exit status 1 on a mismatch)
    python -m nullspace.data_checksums --update # record every shipped file anew

``data/cache/`` (statistics computed on the learner's machine) is not shipped and not recorded.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from nullspace.paths import DATA_DIR, REPO_ROOT

__all__ = ["CHECKSUM_FILE", "mismatches", "read_checksums", "sha256", "shipped_files", "write_checksums"]

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
    lines = [f"{sha256(p)}  {p.relative_to(REPO_ROOT).as_posix()}" for p in shipped_files()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


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
