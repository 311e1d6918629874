"""The HTML compatibility report: ``index.html``, plus ``cells/*.html`` for big runs.

Self-contained: no CDN, font or script, and a Content-Security-Policy that
forbids fetching or running anything, so the folder works from a file or any
static host.  Charts are inline SVG drawn by pygal on the host.

Rendered with Jinja2 from templates inside the package, autoescape on and
``StrictUndefined`` (:mod:`harness.htmlenv`): everything from a target (names, messages, output,
metrics, facts) is untrusted, cleaned of control characters in
:mod:`harness.report.view` and escaped by the templates, never marked safe.

Size: a run of up to :data:`INLINE_MAX_CASES` cases is one page.  Past that,
``index.html`` keeps the overview (matrix, changes, failures, charts, targets),
bounded whatever the run's size, and each cell gets pages of
:data:`PAGE_SIZE` cases (``cells/<cell>.html``, ``cells/<cell>-2.html``, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from harness.htmlenv import env as _env
from harness.model import Metric, Run
from harness.records import Comparison, RunSummary
from harness.report import charts as _charts
from harness.report import project_deps
from harness.report.view import Report, build, change_kinds, target_colors, triage_view

#: Cases a run may have and still be shown on one page.
INLINE_MAX_CASES: Final = 2000
#: Cases per cell page when cells have pages of their own.
PAGE_SIZE: Final = 1000
CELLS_DIR: Final = "cells"


def _chart_context(run: Run, report: Report) -> dict[str, Any]:
    overview = [c for c in (_charts.slowdown_chart(run, report.slowdowns), _charts.outcome_chart(run)) if c is not None]
    latency, latency_total = _charts.latency_charts(run)
    trend = _charts.trend_charts(report.history, target_colors(run))
    return {"overview": overview, "latency": latency, "latency_total": latency_total, "trend": trend}


def _write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8", "replace"))


def render_html(
    run: Run,
    out: Path,
    *,
    comparison: Comparison | None = None,
    history: list[RunSummary] | None = None,
    settings: Mapping[str, Mapping[str, Metric]] | None = None,
    inline_max_cases: int = INLINE_MAX_CASES,
    page_size: int = PAGE_SIZE,
) -> Path:
    """Write ``out/index.html`` (and ``out/cells/`` for a big run); return the index path.

    ``comparison`` marks what changed since an earlier run; ``history`` (oldest
    first) feeds the trend charts; ``settings`` maps a suite name to its
    ``[settings]`` table, shown with the suite.
    """
    report = build(run, comparison=comparison, history=history, settings=settings)
    cells_dir = out / CELLS_DIR
    if cells_dir.is_dir():  # pages of an earlier rendering
        for old in cells_dir.glob("*.html"):
            old.unlink()
    if report.total_cases > inline_max_cases:
        report.paginate(max(1, page_size))
    report.changes = change_kinds(report)
    report.triage = triage_view(report)
    from harness.repro import repro_command

    for f in report.triage.target_only:
        case = f.cell.cell.cases[f.row.case_index].name
        f.repro = repro_command(out.resolve(), f.cell.cell.target, f.cell.cell.suite, case)
    env = _env()
    out.mkdir(parents=True, exist_ok=True)
    if report.split:
        cells_dir.mkdir(exist_ok=True)
        page = env.get_template("cell.html.j2")
        for v in report.cells:
            for i, name in enumerate(v.pages):
                start = i * report.page_size
                stop = min(start + report.page_size, len(v.rows))
                _write(cells_dir / name, page.render(report=report, v=v, page=i, start=start, stop=stop))
    elif cells_dir.is_dir() and not any(cells_dir.iterdir()):
        cells_dir.rmdir()
    html = env.get_template("index.html.j2").render(
        report=report, charts=_chart_context(run, report), projects=project_deps.sections(run)
    )
    path = out / "index.html"
    _write(path, html)
    return path
