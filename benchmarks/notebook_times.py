"""Execute every lesson top to bottom in a fresh kernel and print how long each took.

    python benchmarks/notebook_times.py [notebooks ...]

The executed copies go to build/course/; the stored notebooks are not touched. Progress bars are
off, as in the tests. Targets: lesson 1 under 60 s, every other lesson under 3 minutes, the whole
course under 15 minutes on a 2-core CPU.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import date
from pathlib import Path

from nullspace.course.execute import execute_notebook
from nullspace.course.exercises import solution_notebooks
from nullspace.paths import BUILD_DIR


def main(argv: list[str]) -> int:
    paths = [Path(p).resolve() for p in argv] or solution_notebooks()
    print(f"# lesson execution times, {date.today()}, {os.cpu_count()} cores, {platform.processor() or platform.machine()}")
    print(f"{'notebook':<48} {'seconds':>8}")
    total = 0.0
    for path in paths:
        seconds = execute_notebook(path, BUILD_DIR / "course" / path.name)
        total += seconds
        print(f"{path.name:<48} {seconds:8.1f}", flush=True)
    print(f"{'total':<48} {total:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
