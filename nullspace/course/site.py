"""Build the static course site from the stored notebooks (``make site``).

Sphinx with MyST-NB renders the README, the guides in ``docs/`` and every lesson and exercise
notebook from its stored outputs (nothing is executed; the configuration is ``docs/conf.py``).
The site needs no network: MathJax is copied in from the ``sphinx-mathjax-offline`` package.
Run ``python -m nullspace.course.site [output-dir]``; open ``<output-dir>/index.html``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from nullspace.paths import BUILD_DIR, REPO_ROOT

__all__ = ["MARKER", "SITE_DIR", "SiteFolderError", "build_site", "main"]

SITE_DIR = BUILD_DIR / "site"
LANDING_PAGE = "docs/index.html"
# Written into every output folder before a build: only a folder holding it is ever emptied.
MARKER = ".nullspace-course-site"


class SiteFolderError(FileExistsError):
    """The output folder holds something the course did not make; it is left untouched."""


def _clear_own_output(output: Path) -> None:
    """Empty ``output`` if the course made it; refuse anything else, deleting nothing."""
    if not output.exists():
        return
    if not output.is_dir():
        raise SiteFolderError(f"{output} is a file, not a folder: give a new or empty folder for the site.")
    entries = sorted(p.name for p in output.iterdir())
    if not entries:
        return
    legacy_default = output.resolve() == SITE_DIR.resolve() and (output / "index.html").exists()
    if MARKER not in entries and not legacy_default:
        shown = ", ".join(entries[:5]) + (" …" if len(entries) > 5 else "")
        raise SiteFolderError(
            f"{output} is not empty and was not made by the course site builder (it holds {shown}); nothing "
            "was deleted. Give a new or empty folder, or leave the argument out to build into build/site.")
    shutil.rmtree(output)


def build_site(output: Path = SITE_DIR) -> Path:
    """Build the site into ``output`` from scratch and return the path of its entry page.

    A clean build, so pages of deleted notebooks never linger: a folder the course made (it holds
    the marker file ``.nullspace-course-site``) is emptied first; a new or empty folder is used as
    it is.

    Raises:
        SiteFolderError: ``output`` is a file, or a non-empty folder the course did not make
            (nothing is deleted).
        RuntimeError: the Sphinx build failed (with Sphinx's own output).
    """
    output = Path(output)
    _clear_own_output(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).write_text("Made by `python -m nullspace.course.site`; rebuilding empties this folder.\n",
                                 encoding="utf-8")
    command = [sys.executable, "-m", "sphinx", "-q", "-b", "html", "-c", str(REPO_ROOT / "docs"),
               str(REPO_ROOT), str(output)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the site build failed ({' '.join(command)}):\n{result.stdout}{result.stderr}")
    if result.stderr.strip():
        print(result.stderr, file=sys.stderr, end="")
    # A front door at the top of the output folder, so `index.html` opens the course.
    (output / "index.html").write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0; url={LANDING_PAGE}">'
        f"<title>Null-space methods: a course</title></head>\n"
        f'<body><p><a href="{LANDING_PAGE}">Open the course</a></p></body></html>\n',
        encoding="utf-8")
    return output / "index.html"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    output = Path(args[0]).resolve() if args else SITE_DIR
    try:
        entry = build_site(output)
    except SiteFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"built the course site: open {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
