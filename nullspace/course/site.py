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

__all__ = ["SITE_DIR", "build_site", "main"]

SITE_DIR = BUILD_DIR / "site"
LANDING_PAGE = "docs/index.html"


def build_site(output: Path = SITE_DIR) -> Path:
    """Build the site into ``output`` from scratch and return the path of its entry page.

    A clean build, so pages of deleted notebooks never linger. Raises ``RuntimeError`` with
    Sphinx's own output when the build fails.
    """
    if output.exists():
        shutil.rmtree(output)
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
    entry = build_site(output)
    print(f"built the course site: open {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
