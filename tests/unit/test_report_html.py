"""The HTML report: escaping, grouping of cases, changes, charts, pages for big runs, speed."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.model import CaseResult, CellResult, Run, Status, TargetFacts, TargetInfo, Verdict
from harness.model_deps import MAX_DEPS_ITEMS, MAX_DEPS_TEXT, ProjectDeps
from harness.records import RunSummary
from harness.report import render_all
from harness.report.html import render_html
from harness.report.view import clean, metric_pairs, percentile_groups, split_issue
from tests.report_sample import (
    EVIL,
    big_run,
    hostile_comparison,
    hostile_history,
    hostile_run,
    sample_comparison,
    sample_history,
    sample_run,
)

URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


class Page(HTMLParser):
    """What the tests look at in a rendered page."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.ids: set[str] = set()
        self.rows: list[tuple[str, str, str]] = []  # (group, row id, case name)
        self.row_html: dict[str, list[str]] = {}  # row id -> classes of elements inside
        self._group = ""
        self._row = ""
        self._in_code = False
        self._text: list[str] = []
        self.feed(html)
        self.close()
        self.text = "".join(self._text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr":
            classes = a.get("class", "").split()
            if "group" in classes:
                self._group = next(c[2:] for c in classes if c.startswith("g-"))
                self._row = ""
            elif "id" in a:
                self._row = a["id"]
                self.rows.append((self._group, self._row, ""))
                self.row_html[self._row] = []
        elif self._row and "class" in a:
            self.row_html[self._row].extend(a["class"].split())
        if tag == "code" and self._row and not self.rows[-1][2]:
            self._in_code = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "code":
            self._in_code = False
        if tag == "tbody":
            self._group = ""
            self._row = ""

    def handle_data(self, data: str) -> None:
        self._text.append(data)
        if self._in_code:
            g, rid, name = self.rows[-1]
            self.rows[-1] = (g, rid, name + data)

    def group_of(self, case: str) -> list[str]:
        return [g for g, _, name in self.rows if name == case]

    def hrefs(self) -> list[str]:
        return [a["href"] for tag, a in self.tags if tag == "a" and "href" in a]


def render(tmp_path: Path, run: Run, **kw: object) -> tuple[str, Page]:
    path = render_html(run, tmp_path, **kw)  # type: ignore[arg-type]
    html = path.read_text(encoding="utf-8")
    return html, Page(html)


def assert_safe(html: str, allowed_links: set[str]) -> None:
    """No markup from the data, no fetching, no script; only the allowed outside links."""
    page = Page(html)
    for tag, attrs in page.tags:
        assert tag not in ("script", "img", "iframe", "object", "embed", "link", "base", "form"), tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "srcset", "xlink:href", "action", "formaction", "background", "poster"):
                pytest.fail(f"<{tag} {name}={value!r}> fetches something")
            if name == "href" and tag != "a":
                pytest.fail(f"<{tag} href={value!r}>")
    for href in page.hrefs():
        assert (
            href.startswith(("#", "cells/", "../index.html"))
            or re.fullmatch(r"[\w.-]+\.html(#.*)?", href)
            or (href in allowed_links)
        ), href
    assert set(URL.findall(html)) <= allowed_links
    assert "@import" not in html
    assert "url(" not in html
    assert "\x00" not in html
    assert "\x1b" not in html


# --------------------------------------------------------------------------- escaping


@pytest.mark.parametrize("split", [False, True], ids=["one-page", "cell-pages"])
def test_hostile_text_is_escaped_everywhere(tmp_path: Path, split: bool) -> None:
    run = hostile_run()
    render_html(
        run,
        tmp_path,
        comparison=hostile_comparison(run),
        history=hostile_history(),
        settings={f"s{EVIL}": {EVIL: EVIL, "n": 3}},
        inline_max_cases=0 if split else 10_000,
    )
    pages = [tmp_path / "index.html", *sorted((tmp_path / "cells").glob("*.html"))]
    assert len(pages) == (4 if split else 1)  # index, and a page for each of the three cells
    for p in pages:
        html = p.read_text(encoding="utf-8")
        assert_safe(html, allowed_links={"https://example.org/i/1"})
        text = Page(html).text
        # The hostile text is shown, as text: visible and inert.
        assert "<script>window.__pwned = 1</script>" in text
        assert "\\x00" in text  # NUL made visible
        assert "red" in text
        assert "[31m" not in text  # ANSI colour codes dropped
    index = pages[0].read_text(encoding="utf-8")
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in index
    # The --project dependency table (names, versions, files from PyPI and the indexes) is there, escaped.
    deps = index[index.index('<section class="deps"') : index.index('id="targets"')]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in deps
    assert 'class="dep-distro"' in deps
    assert "javascript:" not in [h[:11] for h in Page(index).hrefs()]


def test_a_known_issue_link_must_be_http() -> None:
    assert split_issue("rounding <https://example.org/i/1>") == ("rounding", "https://example.org/i/1")
    assert split_issue("bad <javascript:alert(1)>") == ("bad <javascript:alert(1)>", "")
    assert split_issue('x <https://a.org/"onmouseover=1>')[1] == ""
    assert split_issue("no link") == ("no link", "")


def test_clean_bounds_text_and_keeps_both_ends() -> None:
    text = "HEAD" + "x" * 50_000 + "TAIL"
    out = clean(text, 1000)
    assert out.startswith("HEAD")
    assert out.endswith("TAIL")
    assert "characters cut" in out
    assert len(out) < 1100
    assert clean("a\x00b\x1b[1mc\x07\udcff") == "a\\x00bc\\x07\\xdcff"
    assert clean("line 1\nline\t2") == "line 1\nline\t2"


def test_output_is_bounded_in_the_page(tmp_path: Path) -> None:
    run = sample_run()
    cell = run.cells[0]
    cell.cases[0].status = Status.FAILED
    cell.cases[0].output = "OUT" + "y" * 2_000_000
    html, _ = render(tmp_path, run)
    assert len(html) < 1_000_000
    assert "characters cut" in html


# --------------------------------------------------------------------------- content


def test_known_issues_and_flaky_are_shown_apart_from_new_failures(tmp_path: Path) -> None:
    html, page = render(tmp_path, sample_run())
    # Passed on native, failed on each riscv64 target (the run lists native first).
    assert page.group_of("test_numpy.py::test_case_03") == ["other"] + ["known-issue"] * 3
    assert page.group_of("test_onnxruntime.py::test_case_05") == ["other"] + ["new-failure"] * 3
    assert page.group_of("test_platform.py::test_case_07") == ["other"] * 3 + ["flaky"]
    assert "Known issues (expected failures)" in page.text
    assert "Failures without a known issue" in page.text
    known_rows = [rid for g, rid, _ in page.rows if g == "known-issue"]
    assert all("m-known" in page.row_html[rid] for rid in known_rows)
    assert "https://github.com/OpenMathLib/OpenBLAS/issues/4820" in page.hrefs()
    flaky_rows = [rid for g, rid, _ in page.rows if g == "flaky"]
    assert flaky_rows
    assert all("m-flaky" in page.row_html[rid] for rid in flaky_rows)
    # The summary counts them apart too.
    assert "3 known issues · 1 flaky" in page.text
    assert 'id="failures"' in html


def test_matrix_shows_verdicts_counts_and_slowdowns(tmp_path: Path) -> None:
    _, page = render(tmp_path, sample_run())
    cells = [a.get("class", "") for tag, a in page.tags if tag == "td" and "cell" in a.get("class", "")]
    assert len(cells) == 24
    assert sum("cv-infra-error" in c for c in cells) == 1
    assert sum("cv-partial" in c for c in cells) == 7
    assert "10/12 passed" in page.text
    assert "×8.66" in page.text  # debian-trixie-riscv64 against native, geometric mean
    assert "qemu-system-riscv64 stopped answering" in page.text
    for href in page.hrefs():
        if href.startswith("#"):
            assert href[1:] in page.ids, href


def test_target_facts_are_shown(tmp_path: Path) -> None:
    _, page = render(tmp_path, sample_run())
    for fact in (
        "rv64imafdcv_zicsr_zifencei_zba_zbb_zbs",
        "rv64,v=true,vlen=256",
        "openEuler 24.03 (LTS-SP1)",
        "glibc 2.38",
        "6.12.9-riscv64",
        "3.13.5",
        "qemu-system",
        "onnxruntime",
        "1.21.0",
        "zbb",
        "qemu-riscv64 9.2.0",
    ):
        assert fact in page.text, fact


def test_metrics_and_settings_display(tmp_path: Path) -> None:
    pairs = metric_pairs({"latency_p50_ms": 4.0, "latency_p90_ms": 6.8, "latency_p99_ms": 11.6, "requests": 400})
    assert pairs == [("latency p50/p90/p99", "4 / 6.8 / 11.6 ms"), ("requests", "400")]
    assert percentile_groups({"p50_ms": 1, "decode_p99_ms": 2.5, "p50": 3, "x_p99_ms": "n/a"}) == {
        "": {"p50": 1.0},
        "decode": {"p99": 2.5},
    }
    _, page = render(tmp_path, sample_run(), settings={"serving": {"model": "resnet18.onnx", "requests": 400}})
    assert "latency p50/p90/p99" in page.text
    assert "throughput_rps" in page.text
    assert "Suite settings" in page.text
    assert "resnet18.onnx" in page.text


def test_changes_since_the_base_run_are_listed_and_marked(tmp_path: Path) -> None:
    run = sample_run()
    html, page = render(tmp_path, run, comparison=sample_comparison(run))
    assert "Changes since 20261128-0900" in page.text
    assert 'id="changes"' in html
    marked = {rid: classes for rid, classes in page.row_html.items() if any(c.startswith("k-") for c in classes)}
    assert len(marked) == 5  # every change is on its case row
    new_failure = [rid for g, rid, name in page.rows if name == "test_onnxruntime.py::test_case_05"]
    assert any("k-new-failure" in page.row_html[rid] for rid in new_failure)
    # The changes table links to the rows; the metric change goes to its case.
    links = [h for h in page.hrefs() if h.startswith("#") and "-c" in h]
    for h in links:
        assert h[1:] in page.ids
    assert "test_serving.py::test_case_01 [latency_p99_ms]" in page.text
    assert "new failure since 20261128-0900: passed → crashed" in page.text


def test_no_comparison_means_no_changes_section(tmp_path: Path) -> None:
    html, _ = render(tmp_path, sample_run())
    assert 'id="changes"' not in html


# --------------------------------------------------------------------------- charts


def test_charts_are_inline_svg_without_script_or_urls(tmp_path: Path) -> None:
    run = sample_run()
    html, page = render(tmp_path, run, comparison=sample_comparison(run), history=sample_history(run))
    svgs = re.findall(r"<svg\b.*?</svg>", html, re.DOTALL)
    ids = [a["id"] for tag, a in page.tags if tag == "figure"]
    assert ids == ["slowdown", "outcomes", "latency-0", "latency-1", "latency-2", "trend-pass", "trend-time"]
    assert len(svgs) == 14  # each drawn wide and narrow (for phones)
    svg_ids = re.findall(r'<svg [^>]*id="([^"]+)"', html)
    assert len(set(svg_ids)) == 14
    for svg in svgs:
        assert "<script" not in svg
        assert "http" not in svg
        assert "<!--" not in svg
    assert_safe(html, allowed_links={"https://github.com/OpenMathLib/OpenBLAS/issues/4820"})
    # Rendering is deterministic: no random chart ids, no render date.
    again = render_html(run, tmp_path / "again", comparison=sample_comparison(run), history=sample_history(run))
    assert again.read_text(encoding="utf-8") == html


def test_latency_chart_picks_up_any_percentile_metric(tmp_path: Path) -> None:
    run = Run(
        run_id="lat",
        started="2026-11-29T00:00:00+00:00",
        targets=[TargetInfo("native", "native"), TargetInfo("rv", "chroot")],
        cells=[
            CellResult(
                t,
                "serving",
                Verdict.COMPATIBLE,
                [
                    CaseResult(
                        "t.py::test_a", Status.PASSED, 1.0, metrics={"decode_p50_ms": k, "decode_p99_ms": 3 * k}
                    ),
                    CaseResult("t.py::test_b", Status.PASSED, 1.0, metrics={"p50_ms": k, "p90_ms": 2 * k}),
                ],
            )
            for t, k in (("native", 1.0), ("rv", 9.0))
        ],
    )
    _, page = render(tmp_path, run)
    captions = [c for c in page.text.splitlines() if "(ms)" in c]
    assert any("t.py::test_a · decode (ms)" in c for c in captions)
    assert any("t.py::test_b · latency (ms)" in c for c in captions)


def test_trend_needs_two_runs_and_includes_this_one(tmp_path: Path) -> None:
    run = sample_run()
    html, _ = render(tmp_path, run, history=[])
    assert 'id="trend-pass"' not in html
    one = [RunSummary("old", "2026-11-28T09:00:00+00:00", {"native": (70, 72, 30.0)})]
    html, page = render(tmp_path, run, history=one)
    assert 'id="trend-pass"' in html  # the old run and this one
    assert "Pass rate over the last 2 runs" in page.text


# --------------------------------------------------------------------------- scale


def test_big_runs_get_cell_pages_and_a_bounded_index(tmp_path: Path) -> None:
    run = big_run(cases_per_cell=600, targets=2, suites=2)  # 2,400 cases
    _, page = render(tmp_path, run, inline_max_cases=2000, page_size=250)
    assert not page.rows  # no case rows on the index
    pages = sorted(p.name for p in (tmp_path / "cells").glob("*.html"))
    assert len(pages) == 4 * 3  # 4 cells of 600 cases, pages of 250
    for href in page.hrefs():
        if href.startswith("cells/"):
            file, _, anchor = href.partition("#")
            target = tmp_path / file
            assert target.exists(), href
            if anchor:
                assert anchor in Page(target.read_text(encoding="utf-8")).ids, href
    sizes = []
    for name in pages:
        text = (tmp_path / "cells" / name).read_text(encoding="utf-8")
        cell_page = Page(text)
        assert 0 < len(cell_page.rows) <= 250
        sizes.append(len(text))
        for href in cell_page.hrefs():
            assert href.startswith("#") or href.startswith("../index.html") or (tmp_path / "cells" / href).exists()
    assert max(sizes) < 500_000
    # Failures come first: the first page of a riscv64 cell starts with them.
    first_page = next(p for p in pages if re.fullmatch(r"target-1-suite-0-[0-9a-f]{8}\.html", p))
    first = Page((tmp_path / "cells" / first_page).read_text(encoding="utf-8"))
    assert first.rows[0][0] == "new-failure"
    # A later, small run in the same folder leaves no stale pages behind.
    render_html(sample_run(), tmp_path)
    assert not (tmp_path / "cells").exists()


def test_200k_cases_render_fast_and_the_index_stays_small(tmp_path: Path) -> None:
    run = big_run(cases_per_cell=10_000, targets=4, suites=5, output="E   AssertionError\n" * 5)
    assert sum(len(c.cases) for c in run.cells) == 200_000
    started = time.perf_counter()
    index = render_html(run, tmp_path)
    took = time.perf_counter() - started
    print(f"rendered 200,000 cases in {took:.2f} s")  # measured about 4 s on a shared 2-core machine
    assert took < 30  # generous: the goal is under 10 s
    assert index.stat().st_size < 1_000_000
    assert len(list((tmp_path / "cells").glob("*.html"))) == 200


def test_render_all_keeps_its_api(tmp_path: Path) -> None:
    run = sample_run()
    written = render_all(run, tmp_path, comparison=sample_comparison(run), history=sample_history(run))
    assert tmp_path / "index.html" in written
    assert len([p for p in written if p.name.startswith("junit-")]) == 4


def test_pygal_leaves_no_legacy_import_hook() -> None:
    import sys

    import harness.report.charts  # noqa: F401  (imports pygal)

    assert all(hasattr(f, "find_spec") for f in sys.meta_path)


def test_large_runs_write_junit_in_a_forked_process_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import report

    run = sample_run()
    serial = tmp_path / "serial"
    serial.mkdir()
    expected = {p.name: p.read_bytes() for p in render_all(run, serial) if p.suffix == ".xml"}  # triaged, serial
    monkeypatch.setattr(report, "PARALLEL_FROM", 1)
    forked = tmp_path / "forked"
    forked.mkdir()
    written = render_all(run, forked)
    assert {p.name: p.read_bytes() for p in written if p.suffix == ".xml"} == expected
    assert forked / "index.html" in written


# --------------------------------------------------------------------------- triage


def test_triage_is_the_first_section_after_the_summary(tmp_path: Path) -> None:
    run = sample_run()
    render_all(run, tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    page = Page(html)
    assert "triage" in page.ids
    assert html.index('id="summary"') < html.index('id="triage"') < html.index('id="matrix"')
    assert '<a href="#triage">Triage</a>' in html
    # Counts by class: SIGILL under emulation is emulator-suspect, the numpy failure target-only.
    counts = re.findall(
        r'<span class="badge t-([a-z-]+)">[a-z-]+</span></td><td class="num" data-l="cases">(\d+)', html
    )
    assert dict(counts) == {"emulator-suspect": "3", "target-only": "6"}
    # Target-only failures beside the baseline's result, linked to their rows.
    section = html[html.index('id="target-only"') : html.index('id="matrix"')]
    assert "test_onnxruntime.py::test_case_06" in section
    assert "passed in " in section
    assert "line 1: <code>E   assert 0.93 &gt; 0.98</code>" in section
    for href in Page(section).hrefs():
        assert href.lstrip("#") in page.ids


def test_target_only_rows_show_the_packages_that_differ(tmp_path: Path) -> None:
    run = Run(
        "r",
        "2026-11-29T00:00:00+00:00",
        baseline="native",
        targets=[
            TargetInfo("native", "native", facts=TargetFacts(emulation="native", packages={"numpy": "2.3.1"})),
            TargetInfo("rv", "chroot", facts=TargetFacts(emulation="qemu-user", packages={"numpy": "2.2.4"})),
        ],
        cells=[
            CellResult("native", "s", Verdict.COMPATIBLE, [CaseResult("t::a", Status.PASSED, 0.25)]),
            CellResult("rv", "s", Verdict.INCOMPATIBLE, [CaseResult("t::a", Status.FAILED, 2.0, message="E  wrong")]),
        ],
    )
    render_all(run, tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    section = html[html.index('id="target-only"') : html.index('id="matrix"')]
    assert "passed in 250 ms" in section
    assert "<code>numpy</code> 2.2.4 vs 2.3.1" in section


def test_no_failure_no_triage_section(tmp_path: Path) -> None:
    run = Run(
        "r",
        "2026-11-29T00:00:00+00:00",
        baseline="native",
        targets=[TargetInfo("native", "native"), TargetInfo("rv", "chroot")],
        cells=[
            CellResult("native", "s", Verdict.COMPATIBLE, [CaseResult("t::a", Status.PASSED, 0.1)]),
            CellResult("rv", "s", Verdict.COMPATIBLE, [CaseResult("t::a", Status.PASSED, 1.0)]),
        ],
    )
    render_all(run, tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert 'id="triage"' not in html
    assert "#triage" not in html


def test_triage_evidence_is_escaped(tmp_path: Path) -> None:
    run = hostile_run()
    for cell in run.cells:
        for case in cell.cases:
            if cell.target == "native":
                case.status, case.message = Status.PASSED, f"{EVIL} baseline"
            else:
                case.message = f"{EVIL} target"
    # A forged triage whose class is not a word must not become markup either.
    run.cells[1].cases[-1].triage = {"class": EVIL, "evidence": {"packages": {EVIL: EVIL}}}
    written = render_all(run, tmp_path)
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert_safe(html, allowed_links={"https://example.org/i/1"})
    section = html[html.index('id="triage"') : html.index('id="matrix"')]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in section
    assert "target-only" in section
    assert tmp_path / "index.html" in written


def test_render_all_triages_and_keeps_results_json_in_step(tmp_path: Path) -> None:
    import json

    run = sample_run()
    (tmp_path / "results.json").write_text(json.dumps(run.to_dict()))
    render_all(run, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    classes = [c["triage"]["class"] for cell in data["cells"] for c in cell["cases"] if "triage" in c]
    assert sorted(set(classes)) == ["emulator-suspect", "target-only"]
    assert all(cell["target"] != "native" or "triage" not in c for cell in data["cells"] for c in cell["cases"])
    before = (tmp_path / "results.json").stat().st_mtime_ns
    render_all(run, tmp_path)  # nothing changed: results.json is left alone
    assert (tmp_path / "results.json").stat().st_mtime_ns == before


# --------------------------------------------------------------------------- --project dependencies

RV = "debian-trixie-riscv64"
DEBIAN_INDEX = "http://deb.debian.org/debian/dists/trixie/main/binary-riscv64/Packages.xz"


def numcast_deps() -> ProjectDeps:
    """examples/numcast as ``run --project`` records it: numpy installed on native, Debian's on riscv64."""
    native: dict[str, Any] = {"target": "native", "distro": "native", "release": "", "arch": "x86_64", "python": "3.13"}
    native["requirements"] = [
        {
            "requirement": "numpy>=1.24",
            "name": "numpy",
            "choice": "installed",
            "offers": [{"source": "installed", "package": "numpy", "version": "2.3.1", "fits": True}],
        }
    ]
    rv: dict[str, Any] = {"target": RV, "distro": "debian", "release": "trixie", "arch": "riscv64", "python": "3.13"}
    rv["index"] = {
        "url": DEBIAN_INDEX,
        "date": "Sat, 15 Nov 2025 09:00:00 UTC",
        "fetched": "2026-11-29T08:00:00+00:00",
        "verified": "InRelease signature (gpgv) and SHA-256",
    }
    rv["requirements"] = [
        {
            "requirement": "numpy>=1.24",
            "name": "numpy",
            "choice": "distro",
            "offers": [
                {"source": "debian", "package": "python3-numpy", "version": "1:2.2.4+ds-1", "fits": True},
                {"source": "pypi-sdist", "package": "numpy-2.3.1.tar.gz", "version": "2.3.1", "fits": True},
            ],
        },
        {"requirement": "nowhere>=1", "name": "nowhere", "choice": "none", "offers": []},  # met on riscv64 only
    ]
    rv["not_run"] = 'a dependency cannot be had on this target: "nowhere>=1" has nothing for this target.'
    return ProjectDeps("project:numcast", "0.1.0", "examples/numcast", [native, rv])


def _deps_cells(html: str) -> dict[str, list[tuple[str, str]]]:
    """The dependency table of a page: requirement -> [(class, html)] per target."""
    start = html.index('<section class="deps"')
    section = html[start : html.index("</section>", start)]
    rows: dict[str, list[tuple[str, str]]] = {}
    for req, tds in re.findall(r"<tr><td><code>(.*?)</code></td>(.*?)</tr>", section, re.DOTALL):
        rows[req] = re.findall(r'<td class="dep-([\w-]+)">(.*?)</td>', tds, re.DOTALL)
    return rows


def test_a_run_with_projects_shows_their_dependency_tables(tmp_path: Path) -> None:
    run = sample_run()
    run.projects = [numcast_deps()]
    html, page = render(tmp_path, run)
    (anchor,) = [i for i in page.ids if i.startswith("deps-project-numcast")]
    assert f"#{anchor}" in page.hrefs()  # the nav links to it
    assert "Dependencies of project:numcast 0.1.0 (examples/numcast)" in page.text
    cells = _deps_cells(html)
    assert cells["numpy&gt;=1.24"] == [
        ("installed", "installed 2.3.1<br><small>no wheel</small>"),
        ("distro", "python3-numpy 2.2.4+ds<br><small>no wheel, sdist 2.3.1</small>"),
    ]
    assert cells["nowhere&gt;=1"] == [("absent", "—"), ("none", "none<br><small>no wheel</small>")]
    assert f"{DEBIAN_INDEX} (release date Sat, 15 Nov 2025" in page.text  # which index was read
    assert f'{RV}: not run: a dependency cannot be had on this target: "nowhere>=1"' in page.text
    section = html[html.index('<section class="deps"') : html.index('id="targets"')]
    assert_safe(section, allowed_links={DEBIAN_INDEX})  # the index's address is text, not a link


def test_a_run_without_projects_has_no_dependency_section(tmp_path: Path) -> None:
    html, page = render(tmp_path, sample_run())
    assert '<section class="deps"' not in html
    assert not any(i.startswith("deps-") for i in page.ids)
    assert "Dependencies" not in page.text


def test_project_deps_are_kept_by_results_json_report_and_merge(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from harness.cli import main
    from harness.merge import merge_runs

    run = sample_run()
    run.projects = [numcast_deps()]
    data = json.loads(json.dumps(run.to_dict()))
    assert data["projects"][0]["suite"] == "project:numcast"
    assert "projects" not in sample_run().to_dict()  # additive: a run without --project is written as before
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(data))
    done = CliRunner().invoke(main, ["--root", str(tmp_path), "report", str(folder)])
    assert done.exit_code == 0, done.output
    assert _deps_cells((folder / "index.html").read_text(encoding="utf-8"))["numpy&gt;=1.24"][1][0] == "distro"
    again = Run.from_dict(data).projects
    assert [(p.suite, [t["target"] for t in p.targets]) for p in again] == [("project:numcast", ["native", RV])]
    assert again[0].targets[1]["requirements"][0]["offers"][0]["package"] == "python3-numpy"

    # Two shards, each with its own target's column: the merge has both, once.
    native_only, rv_only = Run.from_dict(data), Run.from_dict(data)
    native_only.projects[0].targets = native_only.projects[0].targets[:1]
    rv_only.projects[0].targets = rv_only.projects[0].targets[1:]
    native_only.cells = [c for c in native_only.cells if c.target == "native"]
    rv_only.cells = [c for c in rv_only.cells if c.target != "native"]
    (project,) = merge_runs([native_only, rv_only]).projects
    assert [t["target"] for t in project.targets] == ["native", RV]


def test_project_deps_read_back_from_results_json_are_cleaned() -> None:
    """results.json is read back as untrusted: wrong types are dropped, texts bounded, lists capped."""
    long = "x" * 100_000
    forged = {
        "suite": "project:p",
        "version": 7,
        "targets": [
            "not a column",
            {
                "target": long,
                "python": ["3", "13"],
                "index": "http://evil",
                "wheel_tags": [long, 1, None, "a", "b", "c"],
                "requirements": [
                    {"requirement": "numpy", "name": "numpy", "choice": "<b>", "offers": [{"fits": "yes"}, 3]},
                    *({"requirement": str(i)} for i in range(2000)),
                ],
            },
        ],
    }
    raw = {"run_id": "r", "started": "2026-11-29T00:00:00+00:00", "projects": [forged, {"suite": 3}, "junk"]}
    (p,) = Run.from_dict(raw).projects
    assert (p.suite, p.version, p.source) == ("project:p", "", "")
    (col,) = p.targets
    assert len(col["target"]) == MAX_DEPS_TEXT
    assert (col["python"], col["index"], col["not_run"]) == ("", None, "")
    assert col["wheel_tags"] == [long[:MAX_DEPS_TEXT], "a"]  # of the first four items, the strings
    assert len(col["requirements"]) == MAX_DEPS_ITEMS
    first = col["requirements"][0]
    assert first["choice"] == "none"
    empty = dict.fromkeys(("source", "package", "version", "url", "sha256", "note"), "")
    assert first["offers"] == [{**empty, "fits": False}]
    assert Run.from_dict({**raw, "projects": {"a": 1}}).projects == []
