"""Execute course notebooks headlessly, top to bottom, and time them.

``python -m nullspace.course.execute`` runs every solution notebook into ``build/course/``
(the stored notebooks are left as they are) and prints how long each took;
``--in-place`` re-executes the stored solution notebooks themselves (what a maintainer does after
changing a lesson) and then regenerates the exercise notebooks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from nullspace.course.exercises import solution_notebooks, write_exercise_notebooks
from nullspace.paths import BUILD_DIR, NOTEBOOKS_DIR

__all__ = ["execute_notebook", "main"]


def execute_notebook(path: Path, output: Path | None = None, timeout: int = 1800) -> float:
    """Run the notebook at ``path`` in a fresh kernel; write it (with outputs) to ``output``.

    Progress bars and warnings are switched off (``NULLSPACE_PROGRESS=0``,
    ``PYTHONWARNINGS=ignore``, inherited by the kernel) so that stored outputs stay comparable
    under nbval. Returns the wall-clock seconds the run took.
    """
    nb = nbformat.read(path, as_version=4)
    os.environ["NULLSPACE_PROGRESS"] = "0"
    os.environ["PYTHONWARNINGS"] = "ignore"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, output)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to run (default: every numbered lesson)")
    parser.add_argument("--in-place", action="store_true",
                        help="overwrite the stored solution notebooks and regenerate exercises")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or solution_notebooks(NOTEBOOKS_DIR)
    total = 0.0
    for path in paths:
        output = path if args.in_place else BUILD_DIR / "course" / path.name
        seconds = execute_notebook(path, output)
        total += seconds
        print(f"{path.name:<48} {seconds:7.1f} s  -> {output.relative_to(output.parents[1])}", flush=True)
    print(f"{'total':<48} {total:7.1f} s")
    if args.in_place:
        write_exercise_notebooks()
    return 0


if __name__ == "__main__":
    sys.exit(main())
