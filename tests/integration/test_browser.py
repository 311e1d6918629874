"""The HTML report in a real browser: headless Chromium driven by Playwright.

Uses the system's Chromium (Debian's ``chromium`` package), never a browser
that Playwright downloads.  Screenshots go to ``test-artifacts/`` so a person
(or CI's artifact upload) can look at them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.model import CaseResult, Status
from harness.report.html import render_html
from tests.profile_sample import RVA20, RVA23, profile_run
from tests.report_sample import (
    EVIL,
    hostile_comparison,
    hostile_history,
    hostile_run,
    sample_comparison,
    sample_history,
    sample_run,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), "")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM:
    pytest.skip("no chromium binary (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import BrowserContext, Page, sync_playwright  # noqa: E402


class Watched:
    """A page with what it said: console errors, uncaught exceptions, network requests."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def open(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri(), wait_until="load")
        self.page.wait_for_timeout(200)  # let late console messages arrive

    def assert_quiet(self) -> None:
        assert self.errors == []
        assert [u for u in self.requests if not u.startswith("file://")] == []


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            timeout=120_000,
        )
        yield context
        context.close()


def open_page(browser: BrowserContext, width: int) -> Watched:
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    return Watched(page)


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample-report")
    run = sample_run()
    render_html(
        run,
        out,
        comparison=sample_comparison(run),
        history=sample_history(run),
        settings={"serving": {"model": "resnet18.onnx", "requests": 400, "concurrency": "1,2,4"}},
    )
    return out / "index.html"


@pytest.mark.parametrize("width", [1440, 390])
def test_report_renders_cleanly(browser: BrowserContext, sample_report: Path, width: int) -> None:
    w = open_page(browser, width)
    w.open(sample_report)
    page = w.page
    matrix = page.locator("table.matrix")
    assert matrix.is_visible()
    assert page.locator("table.matrix td.cell").count() == 24
    assert page.locator("table.matrix td.cv-infra-error").is_visible()
    # Each chart is drawn twice, for wide screens and for phones; CSS shows one.
    suffix = "-narrow" if width < 720 else ""
    for figure in ("slowdown", "outcomes", "latency-0", "trend-pass"):
        svg = page.locator(f"#{figure} svg").locator("visible=true")
        assert svg.count() == 1, figure
        assert svg.get_attribute("id") == f"chart-{figure}{suffix}"
        box = svg.bounding_box()
        assert box is not None, figure
        assert box["width"] > 300, figure
        assert box["height"] > 100, figure
        assert box["x"] + box["width"] <= width, figure  # not cut off at the right
    # Bars were drawn: pygal's SVG draws each value as a rect in a "bar" group.
    assert page.locator(f"#chart-slowdown{suffix} .bar").count() >= 15
    # The page itself never scrolls sideways; wide tables scroll in their own box.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    assert page.get_by_text("Changes since 20261128-0900").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report-{width}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000
    w.assert_quiet()
    page.close()


@pytest.mark.parametrize("split", [False, True], ids=["one-page", "cell-pages"])
def test_injected_script_does_not_run(browser: BrowserContext, tmp_path: Path, split: bool) -> None:
    run = hostile_run()
    run.cells[0].cases.append(
        CaseResult(f"t.py::test_{EVIL}_2", Status.ERROR, 0.1, message="<svg onload=window.__pwned=3>", output=EVIL)
    )
    render_html(
        run,
        tmp_path,
        comparison=hostile_comparison(run),
        history=hostile_history(),
        settings={f"s{EVIL}": {EVIL: EVIL}},
        inline_max_cases=0 if split else 10_000,
    )
    pages = [tmp_path / "index.html", *sorted((tmp_path / "cells").glob("*.html"))]
    assert len(pages) == (4 if split else 1)
    w = open_page(browser, 1024)
    for path in pages:
        w.open(path)
        assert w.page.evaluate("typeof window.__pwned") == "undefined", path.name
        assert w.page.locator("script, img, iframe").count() == 0, path.name
        # The hostile text is there, as visible text.
        text = w.page.evaluate("document.body.innerText")
        assert "<script>window.__pwned = 1</script>" in text, path.name
    if not split:
        ARTIFACTS.mkdir(exist_ok=True)
        w.page.screenshot(path=str(ARTIFACTS / "report-hostile.png"), full_page=True)
    w.assert_quiet()
    w.page.close()


def test_cell_pages_navigate(browser: BrowserContext, tmp_path: Path) -> None:
    run = sample_run()
    for cell in run.cells:
        cell.workers, cell.workers_asked = 2, "auto"
    render_html(run, tmp_path, inline_max_cases=10, page_size=5)
    w = open_page(browser, 1440)
    w.open(tmp_path / "index.html")
    w.page.locator("table.matrix td.cv-partial a").first.click()
    w.page.wait_for_load_state("load")
    assert "/cells/" in w.page.url
    workers = w.page.locator("section.cell span.workers")
    assert workers.is_visible()
    assert workers.inner_text() == "workers 2 (auto)"
    assert w.page.locator("table.cases tbody tr[id]").count() == 5
    assert w.page.locator("nav.pager").first.is_visible()
    w.page.locator("nav.pager a").first.click()
    w.page.wait_for_load_state("load")
    assert w.page.locator("table.cases tbody tr[id]").count() >= 1
    w.page.get_by_text("← Matrix").click()
    w.page.wait_for_load_state("load")
    assert w.page.url.endswith("index.html#matrix")
    w.assert_quiet()
    w.page.close()


@pytest.mark.parametrize("width", [1440, 390])
def test_profile_comparison_in_the_browser(browser: BrowserContext, tmp_path: Path, width: int) -> None:
    """One image under rva20 and rva23: the section is listed, names both, and a status links to its case."""
    render_html(profile_run(), tmp_path)
    w = open_page(browser, width)
    w.open(tmp_path / "index.html")
    page = w.page
    section = page.locator("section.profile-group")
    assert section.count() == 1
    page.locator('nav a[href="#profiles"]').click()
    assert page.locator("#profiles").is_visible()
    assert section.locator("table.profiles tbody tr").count() == 2
    assert section.get_by_text(RVA20, exact=True).first.is_visible()
    assert section.get_by_text(RVA23, exact=True).first.is_visible()
    speed = section.locator("table.profile-speed tbody tr")
    assert speed.count() == 1
    assert f"{RVA20} ×2.00 over {RVA23}" in speed.inner_text()
    assert section.locator("table.profile-outcomes tbody tr").count() == 2
    assert section.locator("table.profile-metrics tbody tr").count() == 2
    # The page never scrolls sideways, on a phone either; wide tables scroll in their own box.
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    ARTIFACTS.mkdir(exist_ok=True)
    section.screenshot(path=str(ARTIFACTS / f"report-profiles-{width}.png"))
    # The failed status on rva23 links to that case's row in its cell.
    section.locator("table.profile-outcomes a:has(.s-failed)").click()
    target = page.evaluate("location.hash")
    assert target.startswith("#")
    assert page.locator(f"tr[id='{target[1:]}']").is_visible()
    assert "test_fft.py::test_rfft" in page.locator(f"tr[id='{target[1:]}']").inner_text()
    w.assert_quiet()
    page.close()
