"""The HTML compatibility report: one self-contained ``index.html`` (no CDN).

Rendered with Jinja2 from templates inside the package, autoescape on and
``StrictUndefined``: everything from a target (names, messages, output) is
untrusted and is escaped, never marked safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from harness.model import CellResult, Run, Status, Verdict
from harness.report.compare import case_slowdowns, cell_slowdown, target_slowdown
from harness.report.types import Comparison, RunSummary

STATUS_ORDER = [s.value for s in Status]


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = _seconds
    env.filters["ratio"] = lambda r: "" if r is None else f"×{r:.1f}" if r >= 10 else f"×{r:.2f}"
    return env


def _seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    return f"{int(s // 60)} min {int(s % 60)} s"


def cell_id(cell: CellResult) -> str:
    return "cell-" + "".join(ch if ch.isalnum() else "-" for ch in f"{cell.target}--{cell.suite}")


def context(run: Run) -> dict[str, Any]:
    targets = [t.name for t in run.targets]
    suites = run.suites
    matrix = []
    for s in suites:
        row = []
        for t in targets:
            cell = run.cell(t, s)
            row.append(
                {
                    "cell": cell,
                    "id": cell_id(cell) if cell else "",
                    "slowdown": cell_slowdown(run, cell) if cell else None,
                    "counts": cell.counts() if cell else {},
                }
            )
        matrix.append({"suite": s, "cells": row})
    cells = []
    for c in run.cells:
        cells.append(
            {
                "cell": c,
                "id": cell_id(c),
                "slowdowns": case_slowdowns(run, c),
                "counts": c.counts(),
                "slowdown": cell_slowdown(run, c),
            }
        )
    totals = dict.fromkeys(STATUS_ORDER, 0)
    for c in run.cells:
        for k, v in c.counts().items():
            totals[k] += v
    verdicts = {v.value: sum(1 for c in run.cells if c.verdict is v) for v in Verdict}
    return {
        "run": run,
        "targets": run.targets,
        "suites": suites,
        "matrix": matrix,
        "cells": cells,
        "totals": totals,
        "verdicts": verdicts,
        "status_order": STATUS_ORDER,
        "target_slowdown": {t: target_slowdown(run, t) for t in targets},
    }


def render_html(
    run: Run,
    out: Path,
    *,
    comparison: Comparison | None = None,
    history: list[RunSummary] | None = None,
) -> Path:
    ctx = context(run)
    ctx["comparison"] = comparison
    ctx["history"] = history or []
    html = _env().get_template("index.html.j2").render(**ctx)
    path = out / "index.html"
    path.write_bytes(html.encode("utf-8", "replace"))
    return path
