"""Fixtures of the browser checks: Debian's Chromium, driven by Playwright.

The checks use the system Chromium (``/usr/bin/chromium``, or ``NULLSPACE_CHROMIUM``) and never
download a browser. Without one they fail with instructions; they never skip, so a CI machine
that lost its browser cannot pass silently. ``make test`` installs Chromium when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from nullspace.paths import BUILD_DIR

CHROMIUM = Path(os.environ.get("NULLSPACE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS_DIR = BUILD_DIR / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Chromium with a fresh profile (Playwright makes a new user-data-dir per launch)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}. Install Debian's package with "
                    "`sudo apt-get install -y chromium` (`make test` does it when run as root or "
                    "with sudo), or point NULLSPACE_CHROMIUM at a Chromium binary.", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS_DIR
