"""The course in JupyterLab, as a learner sees it, in headless Chromium.

The README's course command (``make course``) is started on 127.0.0.1 at a free port with a token
chosen here. The address it would open in a browser must be the course index, which must render
in JupyterLab; then lesson 1 is opened, its outputs cleared, every cell up to its first figure run,
and that cell's printed output and its plot must appear again. Screenshots go to ``build/screenshots/``. The settings of this JupyterLab live in a
temporary folder with autosave off, so the stored notebooks are never written (checked).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from local_server import free_port
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from nullspace.course.pages import COURSE_INDEX
from nullspace.course.syllabus import SYLLABUS, lesson_notebook
from nullspace.paths import REPO_ROOT

SERVER_START_TIMEOUT_S = 90
FIGURE_TIMEOUT_MS = 240_000  # kernel start (first imports of a fresh install) and the cells
IMAGE_TYPES = ("image/png", "image/svg+xml")
# JupyterLab's own settings for this run: never write the notebook, render every cell (no
# windowing, so cells far down exist in the page), no news or update checks over the network.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    start_url: str  # the address `make course` opens in a browser (JupyterLab's redirect file)

    def open(self, page: Page, notebook: Path, address: str | None = None) -> None:
        """Open ``notebook`` (a path in the repository) in JupyterLab, at ``address`` if given,
        and wait until its cells are shown."""
        relative = notebook.relative_to(REPO_ROOT).as_posix()
        address = address or f"{self.url}/lab/tree/{relative}?token={self.token}"
        page.goto(f"{address}&reset")  # reset: no tabs restored from an earlier page
        cells = len(nbformat.read(notebook, as_version=4).cells)
        shown = ("() => [...document.querySelectorAll('.jp-NotebookPanel')].filter(p => p.offsetParent)"
                 ".map(p => p.querySelectorAll('.jp-Cell').length)")
        try:
            page.wait_for_function(f"() => ({shown})().join() == '{cells}'", timeout=60_000)
        except PlaywrightTimeoutError:
            raise AssertionError(f"JupyterLab should show the {cells} cells of {relative}; "
                                 f"cells shown per open notebook: {page.evaluate(shown)}") from None

    def wait_for_idle_kernel(self, timeout_s: float) -> None:
        """Wait until a kernel runs and every kernel is idle (JupyterLab's REST API)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            kernels = json.loads(_get(f"{self.url}/api/kernels", self.token))
            if kernels and all(k["execution_state"] == "idle" for k in kernels):
                return
            time.sleep(0.5)
        raise AssertionError(f"the kernel was not idle within {timeout_s} s")

    def shut_down_kernels(self) -> None:
        """Stop every kernel (JupyterLab starts one for each notebook it opens)."""
        for kernel in json.loads(_get(f"{self.url}/api/kernels", self.token)):
            _get(f"{self.url}/api/kernels/{kernel['id']}", self.token, method="DELETE")


def _get(url: str, token: str, method: str = "GET") -> str:
    """Call JupyterLab's REST API with the token; return the body."""
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"}, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def _wait_until_serving(url: str, token: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`make course` exited with {server.returncode}:\n{log.read_text()}", pytrace=False)
        try:
            _get(f"{url}/api/status", token)
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_TIMEOUT_S} s:\n{log.read_text()}", pytrace=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab started by the course command, on 127.0.0.1, with a fresh token and settings."""
    home = tmp_path_factory.mktemp("jupyterlab")
    for name, values in LAB_SETTINGS.items():
        (home / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (home / "settings" / name).write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    env = os.environ | {"JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
                        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
                        "JUPYTER_CONFIG_DIR": str(home / "config"),
                        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
                        "NULLSPACE_PROGRESS": "0"}
    lab_args = (f"--no-browser --ServerApp.port={port} "  # make course binds to 127.0.0.1 itself
                f"--ServerApp.port_retries=0 --IdentityProvider.token={token}")
    log = home / "jupyterlab.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(["make", "-s", "-C", str(REPO_ROOT), "course", f"LAB_ARGS={lab_args}"],
                                  env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, token, server, log)
        yield Lab(url, token, _start_url(home / "runtime"))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # make and the JupyterLab it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _start_url(runtime_dir: Path) -> str:
    """The address JupyterLab opens for the file it was started on (what a learner's browser gets)."""
    redirects = list(runtime_dir.glob("jpserver-file-to-run-*-open.html"))
    assert len(redirects) == 1, f"`make course` should start JupyterLab on one file; found {redirects}"
    match = re.search(r'http-equiv="refresh" content="[0-9]+;url=([^"]+)"', redirects[0].read_text())
    assert match, f"no address in {redirects[0].name}"
    return match.group(1)


def _menu(page: Page, menu: str, command: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=menu).click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def test_course_command_opens_the_course_index(lab, browser, screenshots_dir):
    relative = COURSE_INDEX.relative_to(REPO_ROOT).as_posix()
    assert f"/lab/tree/{relative}?" in lab.start_url, f"`make course` opens {lab.start_url}"
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    lab.open(page, COURSE_INDEX, lab.start_url)
    notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
    heading = notebook.locator("h1").first
    assert "Null-space methods" in heading.inner_text()
    assert notebook.locator("table").count() == 1, "the lesson list should render as one table"
    assert notebook.locator("mjx-container").count() > 0, "the index's equations should be typeset"
    page.screenshot(path=screenshots_dir / "jupyterlab_course_index.png")
    page.close()
    lab.shut_down_kernels()  # the index has no code; its kernel would only compete for the CPU


def _first_figure_cell(notebook: nbformat.NotebookNode) -> int:
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and any(
                kind in output.get("data", {}) for output in cell.get("outputs", []) for kind in IMAGE_TYPES):
            return index
    raise AssertionError("lesson 1 has no code cell with a stored figure to check in the browser.")


def _stored_stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout").strip()


def test_lesson_one_runs_a_cell_and_shows_its_output_and_plot(lab, browser, screenshots_dir):
    lesson = lesson_notebook(SYLLABUS[0])
    assert lesson is not None, "lesson 1 (notebooks/01_*.ipynb) is not in the repository."
    stored_bytes = lesson.read_bytes()
    stored = nbformat.reads(stored_bytes.decode(), as_version=4)
    target = _first_figure_cell(stored)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    lab.open(page, lesson)  # cells run once the kernel has started (slow on a fresh install)
    cell = page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(target)
    figure = cell.locator(".jp-OutputArea-output img, .jp-OutputArea-output svg")
    _menu(page, "Edit", "editmenu:clear-all")
    assert figure.count() == 0, "the stored figure should be gone after clearing the outputs"

    cell.locator(".jp-InputPrompt").click()
    _menu(page, "Run", "notebook:run-all-above")
    _menu(page, "Run", "notebook:run-cell")
    figure.first.wait_for(state="visible", timeout=FIGURE_TIMEOUT_MS)
    lab.wait_for_idle_kernel(timeout_s=FIGURE_TIMEOUT_MS / 1000)
    figure.first.scroll_into_view_if_needed()
    page.screenshot(path=screenshots_dir / f"jupyterlab_{lesson.stem}_cell{target}.png")

    image_loaded = figure.first.evaluate("el => el.tagName != 'IMG' || (el.complete && el.naturalWidth > 0)")
    assert image_loaded, "the plot's image did not load"
    prompt = cell.locator(".jp-InputPrompt").inner_text()
    assert any(ch.isdigit() for ch in prompt), f"the cell did not run (its prompt reads {prompt!r})"
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, f"a cell wrote an error or a warning:\n{errors.first.inner_text()}"
    expected_text = _stored_stdout(stored.cells[target])
    if expected_text and "nbval-ignore-output" not in stored.cells[target].metadata.get("tags", []):
        shown = cell.locator('[data-mime-type="application/vnd.jupyter.stdout"]').all_inner_texts()
        assert "".join(shown).strip() == expected_text, "the printed output differs from the stored one"
    page.close()
    assert lesson.read_bytes() == stored_bytes, "JupyterLab wrote to the stored lesson notebook"
