"""Where the course's shipped files live."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
EXERCISES_DIR = NOTEBOOKS_DIR / "exercises"
BUILD_DIR = REPO_ROOT / "build"
