"""nullspace: the tested helper package of the course on null-space methods.

``nullspace.linalg`` and ``nullspace.capture`` form the core both papers share;
``nullspace.continual`` holds the Adam-NSCL half, ``nullspace.editing`` the AlphaEdit half,
``nullspace.course`` the exercise checks and the notebook tooling.
"""

from nullspace.settings import apply_threads

__version__ = "0.1.0"

apply_threads()  # NULLSPACE_THREADS, once, before any lesson, test or benchmark computes
