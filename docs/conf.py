"""Sphinx configuration of the course site (``make site``).

The site is built from the repository root (``sphinx-build -c docs . build/site``) so that every
relative link in the README, the guides and the notebooks works both on the repository host and on
the site. Notebooks are rendered from their stored outputs and never executed here; MathJax is
served from the ``sphinx-mathjax-offline`` package, so the site works without a network.
"""

from __future__ import annotations

project = "Null-space methods for continual learning and knowledge editing"
author = "the course authors"
copyright = "the course authors, MIT licence"

root_doc = "docs/index"
extensions = ["myst_nb", "sphinx.ext.mathjax", "sphinx-mathjax-offline"]

# Only the course's own pages: the front page, the guides, the lessons and their exercise versions.
include_patterns = [
    "README.md",
    "CONTRIBUTING.md",
    "docs/*.md",
    "benchmarks/RESULTS.md",
    "notebooks/[0-9][0-9]_*.ipynb",
    "notebooks/exercises/[0-9][0-9]_*.ipynb",
]
exclude_patterns = ["build", ".venv", "**/.ipynb_checkpoints"]

# Stored outputs only: a site build must not run the lessons (minutes of CPU, and no data needed).
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = "Null-space methods: a course"
html_show_sourcelink = False
html_copy_source = False
