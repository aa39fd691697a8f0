"""What a reader would notice on a page of the course site, checked in a real browser.

:func:`visit` loads one page with every request outside the local server blocked (the site must
work offline) and returns what is wrong with it: requests that failed or left the machine, images
that did not load, links to pages or anchors that do not exist, and equations that MathJax did not
typeset (a ``math`` element without MathJax output, a MathJax error, or TeX left in the text).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

# Text outside code that still looks like TeX means an equation was not typeset.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\$[^$\s][^$]*\\[A-Za-z]+[^$]*\$|"
                     r"\\(?:frac|sum|lambda|Lambda|Delta|mathbf|mathrm|top|sqrt|cdot|le|ge|in|min|max)\b")

_PAGE_FACTS = """() => {
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight';
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement && !node.parentElement.closest(skip) && node.textContent.trim())
      texts.push(node.textContent);
  }
  const maths = [...document.querySelectorAll('.math')];
  return {
    images: [...document.images].map(img => ({src: img.currentSrc || img.src,
                                              ok: img.complete && img.naturalWidth > 0})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    maths: maths.length,
    untypeset: maths.filter(m => !m.querySelector('mjx-container'))
                    .map(m => m.textContent.trim().slice(0, 60)),
    mathErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 60)),
    texts: texts,
  };
}"""


@dataclass
class PageReport:
    """What one visit found: counts of what was checked, and the problems."""

    url: str
    images: int = 0
    links: int = 0
    equations: int = 0
    problems: list[str] = field(default_factory=list)


@functools.cache
def _ids_in(path: Path) -> frozenset[str]:
    return frozenset(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8", errors="replace")))


def _local_target(url: str, site_dir: Path) -> Path:
    path = unquote(urlsplit(url).path)
    target = site_dir / path.lstrip("/")
    return target / "index.html" if path.endswith("/") or target.is_dir() else target


def _link_problem(link: str, base_url: str, site_dir: Path) -> str | None:
    if not link.startswith(base_url):
        scheme = urlsplit(link).scheme
        return None if scheme in {"http", "https", "mailto"} else f"link with an unusable address: {link}"
    address, fragment = urldefrag(link)
    target = _local_target(address, site_dir)
    if not target.is_file():
        return f"broken link: {link} (no {target.relative_to(site_dir)} in the site)"
    if fragment and target.suffix == ".html" and unquote(fragment) not in _ids_in(target):
        return f"broken link: {link} (no anchor #{fragment} on that page)"
    return None


def visit(page: Page, url: str, base_url: str, site_dir: Path) -> PageReport:
    """Load ``url`` (a page of the site served at ``base_url`` from ``site_dir``) and check it.

    Use a fresh ``page`` for each visit: the listeners added here stay on it.
    """
    report = PageReport(url)
    failures: list[str] = []

    def block_the_network(route):
        if route.request.url.startswith(base_url) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            failures.append(f"request outside the site (the site must work offline): {route.request.url}")
            route.abort()

    page.route("**/*", block_the_network)
    page.on("response", lambda r: r.status >= 400 and failures.append(f"HTTP {r.status}: {r.url}"))
    page.on("requestfailed", lambda r: r.url.startswith(base_url)
            and failures.append(f"request failed ({r.failure}): {r.url}"))
    page.goto(url, wait_until="load")
    # MathJax's script is deferred, so by the "load" event it has run (or failed to load).
    if page.locator(".math").count():
        if not page.evaluate("() => Boolean(window.MathJax && MathJax.startup && MathJax.startup.promise)"):
            failures.append("the page has equations but MathJax did not load")
        else:
            try:
                page.evaluate("() => MathJax.startup.promise")
            except PlaywrightError as err:
                failures.append(f"MathJax failed: {str(err).splitlines()[0]}")
    facts = page.evaluate(_PAGE_FACTS)
    page.unroute("**/*")

    report.images, report.links, report.equations = len(facts["images"]), len(facts["links"]), facts["maths"]
    report.problems.extend(failures)
    report.problems.extend(f"image did not load: {img['src']}" for img in facts["images"] if not img["ok"])
    report.problems.extend(f"equation not typeset: {tex!r}" for tex in facts["untypeset"])
    report.problems.extend(f"MathJax error: {err!r}" for err in facts["mathErrors"])
    report.problems.extend(f"TeX left in the text: {text.strip()[:80]!r}"
                           for text in facts["texts"] if RAW_TEX.search(text))
    for link in sorted(set(facts["links"])):
        problem = _link_problem(link, base_url, site_dir)
        if problem:
            report.problems.append(problem)
    return report
