"""What the HTML report shows, computed once from a ``Run``: plain objects with display-ready text.

Templates only loop and print; every number is formatted and every piece of
target text is cleaned (control characters made visible, ANSI colour codes
dropped, lengths bounded).  Escaping is NOT done here: the templates
autoescape, so values stay plain ``str``.

Built for big runs: one pass over the cases, dictionaries instead of searches,
and case rows as tuples.  By part of the report (each module imports only those
listed before it):

- :mod:`harness.report.text`: cleaning and formatting text, numbers, durations;
- :mod:`harness.report.changes`: what changed since an earlier run;
- :mod:`harness.report.cells`: a cell's case rows, groups and counts;
- :mod:`harness.report.targets`: each target's facts, colour and totals;
- :mod:`harness.report.failures`: the failures to look at and the triage section;
- this module: the whole :class:`Report` (matrix, totals, links) and :func:`build`.

Every name the report's modules and templates use is importable from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from harness.compare import case_slowdowns, cell_slowdown
from harness.model import Metric, Run, Status
from harness.records import Comparison, RunSummary
from harness.report.cells import (
    GROUP_TITLES,
    GROUPS,
    MAX_LOG,
    STATUS_ORDER,
    CaseRow,
    CellView,
    Section,
    case_row,
    cell_view,
)
from harness.report.changes import (
    CHANGE_ORDER,
    CHANGE_TITLES,
    MAX_CHANGES_SHOWN,
    ChangeKind,
    ChangeMark,
    ChangeRow,
    change_tables,
    index_changes,
    kind_class,
    metric_case,
)
from harness.report.failures import (
    MAX_FAILURES_SHOWN,
    MAX_TRIAGE_SHOWN,
    FailureRow,
    TriageRow,
    TriageView,
    failures_to_look_at,
    triage_of,
)
from harness.report.profiles import ProfileGroup, profile_groups
from harness.report.targets import PALETTE, TargetView, target_colors, target_views, verdict_counts
from harness.report.text import (
    MAX_TEXT,
    clean,
    metric_pairs,
    number,
    parse_time,
    percentile_groups,
    ratio,
    seconds,
    short_time,
    slug,
    split_issue,
)

__all__ = [
    "CHANGE_ORDER",
    "CHANGE_TITLES",
    "GROUPS",
    "GROUP_TITLES",
    "MAX_CHANGES_SHOWN",
    "MAX_FAILURES_SHOWN",
    "MAX_LOG",
    "MAX_TEXT",
    "MAX_TRIAGE_SHOWN",
    "PALETTE",
    "STATUS_ORDER",
    "CaseRow",
    "CellView",
    "ChangeKind",
    "ChangeMark",
    "ChangeRow",
    "FailureRow",
    "ProfileGroup",
    "Report",
    "Section",
    "TargetView",
    "TriageRow",
    "TriageView",
    "build",
    "case_row",
    "change_kinds",
    "clean",
    "kind_class",
    "metric_pairs",
    "number",
    "percentile_groups",
    "profile_groups",
    "ratio",
    "seconds",
    "short_time",
    "slug",
    "split_issue",
    "summary_of",
    "target_colors",
    "triage_view",
]


@dataclasses.dataclass
class Report:
    """Everything the templates print."""

    run: Run
    title: str  # the run id
    host: str
    version: str
    base_run: str  # the run compared with, if any
    started: str
    finished: str
    duration: str
    baseline: str
    targets: list[TargetView]
    suites: list[str]
    matrix: list[tuple[str, list[CellView | None]]]
    cells: list[CellView]
    totals: dict[str, int]
    total_cases: int
    verdicts: dict[str, int]
    failures: list[FailureRow]
    failures_total: int
    known_total: int
    flaky_total: int
    comparison: Comparison | None
    changes: list[ChangeKind]
    history: list[RunSummary]
    settings: dict[str, list[tuple[str, str]]]
    argv: str
    by_key: dict[tuple[str, str], CellView]
    slowdowns: dict[tuple[str, str], float]  # (target, suite) -> cell slowdown against the baseline
    page_size: int = 0  # rows per cell page; 0: every cell inline in index.html
    triage: TriageView | None = None  # set by triage_view() once rows are placed
    _profiles: list[ProfileGroup] | None = None

    def profiles(self) -> list[ProfileGroup]:
        """The profile comparison (:mod:`harness.report.profiles`), its cases linked to their rows; computed once.

        Called by the template, so the links follow the pages :meth:`paginate` made.
        """
        if self._profiles is None:
            self._profiles = profile_groups(self.run, self.case_href)
        return self._profiles

    @property
    def split(self) -> bool:
        return self.page_size > 0

    def paginate(self, page_size: int) -> None:
        """Put each cell's rows on pages of ``page_size`` (``cells/<slug>.html``, ``-2.html``, …)."""
        self.page_size = page_size
        for v in self.cells:
            n = max(1, -(-len(v.rows) // page_size))
            v.pages = [f"{v.slug}.html"] + [f"{v.slug}-{i}.html" for i in range(2, n + 1)]

    def cell_href(self, view: CellView) -> str:
        """Link from index.html to a cell."""
        return f"cells/{view.pages[0]}" if self.split else f"#{view.slug}"

    def row_href(self, view: CellView, position: int) -> str:
        """Link from index.html to one case row."""
        anchor = view.rows[position].id
        if not self.split:
            return f"#{anchor}"
        return f"cells/{view.pages[position // self.page_size]}#{anchor}"

    def case_href(self, target: str, suite: str, case: str) -> str:
        view = self.by_key.get((target, suite))
        if view is None:
            return ""
        base = metric_case(case)
        if base is not None and view.position_of(case) is None:
            case = base  # a metric change: "case [metric]"
        pos = view.position_of(case)
        return self.row_href(view, pos) if pos is not None else self.cell_href(view)


def build(
    run: Run,
    *,
    comparison: Comparison | None = None,
    history: Iterable[RunSummary] | None = None,
    settings: Mapping[str, Mapping[str, Metric]] | None = None,
) -> Report:
    changes_by_case = index_changes(comparison)
    base_run = clean(comparison.base_run_id, 200) if comparison else ""
    target_names = [t.name for t in run.targets]
    for c in run.cells:  # cells of a target the run did not list still show
        if c.target not in target_names:
            target_names.append(c.target)
    settings_view = {
        clean(suite, 200): [(clean(str(k), 200), number(v)) for k, v in values.items()]
        for suite, values in (settings or {}).items()
    }

    cells: list[CellView] = []
    by_key: dict[tuple[str, str], CellView] = {}
    totals = dict.fromkeys(STATUS_ORDER, 0)
    failures_total = known_total = flaky_total = 0
    cell_ratios: dict[tuple[str, str], float] = {}
    for cell in run.cells:
        cell_ratio = cell_slowdown(run, cell)
        if cell_ratio is not None:
            cell_ratios[(cell.target, cell.suite)] = cell_ratio
        view = cell_view(
            cell,
            slowdowns=case_slowdowns(run, cell),
            cell_ratio=cell_ratio,
            changes=changes_by_case,
            base_run=base_run,
            settings=settings_view.get(cell.suite, []),
        )
        for k, v in view.counts.items():
            totals[k] += v
        failures_total += view.groups["new-failure"]
        known_total += view.groups["known-issue"]
        flaky_total += view.groups["flaky"]
        cells.append(view)
        by_key[(cell.target, cell.suite)] = view

    suites = run.suites
    matrix = [(clean(s, 200), [by_key.get((t, s)) for t in target_names]) for s in suites]
    started, finished = parse_time(run.started), parse_time(run.finished)
    duration = seconds((finished - started).total_seconds()) if started and finished else ""
    history_list = _history_with_current(run, list(history or []))
    return Report(
        run=run,
        title=clean(run.run_id, 200),
        host=clean(run.host, 200),
        version=clean(run.leapfrog_version, 100),
        base_run=base_run,
        started=short_time(run.started),
        finished=short_time(run.finished) if run.finished else "",
        duration=duration,
        baseline=clean(run.baseline, 200),
        targets=target_views(run, target_names, cells, cell_ratios),
        suites=suites,
        matrix=matrix,
        cells=cells,
        totals=totals,
        total_cases=sum(totals.values()),
        verdicts=verdict_counts(c.verdict.value for c in run.cells),
        failures=failures_to_look_at(cells),
        failures_total=failures_total,
        known_total=known_total,
        flaky_total=flaky_total,
        comparison=comparison,
        changes=[],
        history=history_list,
        settings=settings_view,
        argv=clean(" ".join(run.argv), 2000),
        by_key=by_key,
        slowdowns=cell_ratios,
    )


def summary_of(run: Run) -> RunSummary:
    """The trend-chart numbers of one run, as the history database would give them."""
    per: dict[str, tuple[int, int, float]] = {}
    for c in run.cells:
        p, n, s = per.get(c.target, (0, 0, 0.0))
        p += sum(1 for k in c.cases if k.status is Status.PASSED)
        per[c.target] = (p, n + len(c.cases), s + sum(k.duration for k in c.cases))
    return RunSummary(run_id=run.run_id, started=run.started, per_target=per)


def _history_with_current(run: Run, history: list[RunSummary]) -> list[RunSummary]:
    if not history:
        return []
    if all(h.run_id != run.run_id for h in history):
        history = [*history, summary_of(run)]
    return sorted(history, key=lambda h: h.started)


def change_kinds(report: Report) -> list[ChangeKind]:
    """The "Changes since" tables, bounded, each row linked to where its case is shown."""
    return change_tables(report.comparison, report.case_href)


def triage_view(report: Report) -> TriageView:
    """Cases per triage class, and the target-only failures with their evidence (see :func:`triage_of`)."""
    return triage_of(report.cells)
