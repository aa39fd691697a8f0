"""The course site: built from the stored notebooks, every page visited in headless Chromium.

A page fails on a missing image, a broken link (page or anchor), an unrendered equation, or a
request that needs the network. The checker itself is first shown to catch each of those on a
small site with one planted defect per page. A screenshot of every page goes to
``build/screenshots/site/`` and a summary to ``build/screenshots/site_report.txt``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_server import serve_directory
from site_checks import PageReport, visit

from nullspace.course.site import LANDING_PAGE, build_site
from nullspace.course.syllabus import SYLLABUS, lesson_notebook

NOT_PAGES = {"_static", "_sources", "_images"}


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, Path]]:
    """The course site, built now from the working tree, served on 127.0.0.1."""
    site_dir = build_site().parent
    base_url, server = serve_directory(site_dir)
    yield base_url, site_dir
    server.shutdown()


def site_pages(site_dir: Path) -> list[Path]:
    """Every page of the site but the front door (``index.html``, a redirect checked on its own:
    a page that navigates away while it is inspected cannot be inspected)."""
    return sorted(p for p in site_dir.rglob("*.html")
                  if not NOT_PAGES & set(p.relative_to(site_dir).parts) and p != site_dir / "index.html")


def test_front_door_opens_the_landing_page(site, browser):
    base_url, _ = site
    page = browser.new_page()
    page.goto(f"{base_url}/index.html")
    page.wait_for_url(f"{base_url}/{LANDING_PAGE}", timeout=10_000)
    assert page.locator("h1").count() > 0, "the landing page has no title"
    page.close()


def test_every_page_renders_with_its_images_links_and_equations(site, browser, screenshots_dir):
    base_url, site_dir = site
    shots = screenshots_dir / "site"
    shots.mkdir(exist_ok=True)
    reports: list[PageReport] = []
    for path in site_pages(site_dir):
        relative = path.relative_to(site_dir).as_posix()
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        reports.append(visit(page, f"{base_url}/{relative}", base_url, site_dir))
        page.screenshot(path=shots / (relative.replace("/", "__").removesuffix(".html") + ".png"))
        page.close()
    summary = [f"{r.url.removeprefix(base_url)}: {r.images} images, {r.equations} equations, "
               f"{r.links} links, {len(r.problems)} problems" for r in reports]
    (screenshots_dir / "site_report.txt").write_text("\n".join(summary) + "\n", encoding="utf-8")
    problems = [f"{r.url.removeprefix(base_url)}: {p}" for r in reports for p in r.problems]
    assert not problems, "\n".join(problems)


def test_site_has_every_written_lesson_and_the_guides(site):
    _, site_dir = site
    expected = ["docs/index.html", "README.html", "docs/instructor.html", "docs/reading-group.html",
                "notebooks/00_course_index.html"]
    expected += [f"notebooks/{nb.stem}.html" for lesson in SYLLABUS if (nb := lesson_notebook(lesson))]
    missing = [name for name in expected if not (site_dir / name).is_file()]
    assert not missing, f"pages missing from the site: {missing}"
    navigation = (site_dir / "docs/index.html").read_text(encoding="utf-8")
    unlinked = [name for name in expected[1:]
                if not re.search(rf'href="{re.escape(posixpath.relpath(name, "docs"))}[#"]', navigation)]
    assert not unlinked, f"pages not in the site's navigation: {unlinked}"


PLANTED_DEFECTS = {
    "good.html": '<p>fine <a href="missing-image.html#top">next</a> <a href="#here" id="here">here</a></p>',
    "missing-image.html": '<p id="top"><img src="nowhere.png" alt="a figure"></p>',
    "broken-link.html": '<p><a href="no-such-page.html">a lesson</a> <a href="good.html#nope">x</a></p>',
    "raw-tex.html": r"<p>the update $\Delta W$ solves $$X \Delta W = 0$$</p>",
    "untypeset.html": r'<p><span class="math">\(x^\top P\)</span></p>',
    "needs-network.html": '<p><img src="https://cdn.example.org/figure.png" alt="remote"></p>',
}
EXPECTED_PROBLEM = {
    "good.html": None,
    "missing-image.html": "image did not load",
    "broken-link.html": "broken link",
    "raw-tex.html": "TeX left in the text",
    "untypeset.html": "equation not typeset",
    "needs-network.html": "request outside the site",
}


def test_checker_catches_each_planted_defect(tmp_path, browser):
    for name, body in PLANTED_DEFECTS.items():
        (tmp_path / name).write_text(f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")
    base_url, server = serve_directory(tmp_path)
    try:
        for name, expected in EXPECTED_PROBLEM.items():
            page = browser.new_page()
            report = visit(page, f"{base_url}/{name}", base_url, tmp_path)
            page.close()
            if expected is None:
                assert not report.problems, (name, report.problems)
            else:
                assert any(p.startswith(expected) for p in report.problems), (name, report.problems)
    finally:
        server.shutdown()
