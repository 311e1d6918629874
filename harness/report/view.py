"""What the HTML report shows, computed once from a ``Run``: plain objects with display-ready text.

Templates only loop and print; every number is formatted and every piece of
target text is cleaned here (control characters made visible, ANSI colour
codes dropped, lengths bounded).  Escaping is NOT done here: the templates
autoescape, so values stay plain ``str``.

Built for big runs: one pass over the cases, dictionaries instead of searches,
and case rows as ``__slots__`` objects.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

from harness.model import CaseResult, CellResult, Metric, Run, Status, TargetInfo, Verdict, finite
from harness.report.compare import case_slowdowns, cell_slowdown, geometric_mean
from harness.report.types import CaseChange, Comparison, RunSummary

#: Characters of one message or output shown in the report (head and tail are kept).
MAX_TEXT: Final = 12_000
#: Characters of a cell's pytest log shown.
MAX_LOG: Final = 20_000
#: Rows per kind of change listed on the index page.
MAX_CHANGES_SHOWN: Final = 200
#: Failures listed in the index page's "Failures to look at".
MAX_FAILURES_SHOWN: Final = 100

STATUS_ORDER: Final = [s.value for s in Status]
CHANGE_ORDER: Final = [
    "new-failure",
    "verdict-worse",
    "fixed",
    "verdict-better",
    "verdict",
    "slower",
    "faster",
    "new",
    "gone",
    "noise",
]
CHANGE_TITLES: Final = {
    "new-failure": "New failures",
    "verdict-worse": "Worse cell verdicts",
    "fixed": "Fixed",
    "verdict-better": "Better cell verdicts",
    "verdict": "Cell verdicts changed",
    "slower": "Slower",
    "faster": "Faster",
    "new": "New cases",
    "gone": "Cases gone",
    "noise": "Within the noise (not regressions)",
}
#: Case groups, in the order a cell shows them.
GROUPS: Final = ["new-failure", "flaky", "known-issue", "other"]
GROUP_TITLES: Final = {
    "new-failure": "Failures without a known issue",
    "flaky": "Flaky (failed, then passed on a re-run)",
    "known-issue": "Known issues (expected failures)",
    "other": "Passed, skipped and expected",
}

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_ISSUE = re.compile(r"^(?P<reason>.*?)\s*<(?P<link>https?://[^\s<>\"']+)>\s*$", re.DOTALL)
_PERCENTILE = re.compile(r"^(?P<prefix>.*?)(?P<p>p50|p90|p95|p99|p999)_ms$")
_SLUG = re.compile(r"[^A-Za-z0-9]+")


# --------------------------------------------------------------------------- text


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """Target text made safe to show: no ANSI colours, visible control characters, bounded."""
    if not text:
        return ""
    if len(text) <= limit and text.isprintable():  # the common case, checked in C
        return text
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(text) > limit:
        half = limit // 2
        cut = len(text) - 2 * half
        text = f"{text[:half]}\n… {cut:,} characters cut …\n{text[-half:]}"
    return text


def seconds(s: float) -> str:
    if not math.isfinite(s):  # results.json is read back from disk: never trust it to be finite
        return "?"
    if s <= 0:
        return "0 s"
    if s < 0.001:
        return f"{s * 1e6:.0f} µs"
    if s < 0.01:
        return f"{s * 1000:.2f} ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def ratio(r: float | None) -> str:
    if r is None:
        return ""
    return f"×{r:.1f}" if r >= 10 else f"×{r:.2f}"


def number(v: Metric) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:,.4g}" if abs(v) >= 1000 else f"{v:.4g}"
    return clean(str(v), 500)


def metric_pairs(metrics: Mapping[str, Metric]) -> list[tuple[str, str]]:
    """(label, value) pairs; ``x_p50_ms``, ``x_p90_ms``, ``x_p99_ms`` become one "x p50/p90/p99" pair."""
    if not metrics:
        return []
    groups: dict[str, dict[str, Metric]] = {}
    rest: list[tuple[str, str]] = []
    for key, value in metrics.items():
        m = _PERCENTILE.match(key)
        if m and isinstance(value, (int, float)) and not isinstance(value, bool):
            groups.setdefault(m["prefix"], {})[m["p"]] = value
        else:
            rest.append((clean(str(key), 200), number(value)))
    out: list[tuple[str, str]] = []
    for prefix, ps in groups.items():
        order = [p for p in ("p50", "p90", "p95", "p99", "p999") if p in ps]
        label = f"{clean(prefix.rstrip('_'), 200)} {'/'.join(order)}".strip()
        out.append((label, " / ".join(number(ps[p]) for p in order) + " ms"))
    return out + rest


def percentile_groups(metrics: Mapping[str, Metric]) -> dict[str, dict[str, float]]:
    """``{prefix: {"p50": v, ...}}`` for metric keys ending in ``p50_ms``/``p90_ms``/``p99_ms``."""
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        m = _PERCENTILE.match(key)
        number = finite(value)
        if m and m["p"] in ("p50", "p90", "p99") and number is not None:
            out.setdefault(m["prefix"].rstrip("_"), {})[m["p"]] = float(number)
    return out


def split_issue(label: str) -> tuple[str, str]:
    """``"reason <https://…>"`` → (reason, link); only http(s) links become links."""
    m = _ISSUE.match(label)
    if m:
        return clean(m["reason"], 2000), m["link"]
    return clean(label, 2000), ""


def slug(target: str, suite: str) -> str:
    """A file-name-safe, unique id for a cell (readable part plus a short hash)."""
    readable = _SLUG.sub("-", f"{target}--{suite}").strip("-")[:60] or "cell"
    digest = hashlib.blake2b(f"{target}\x00{suite}".encode("utf-8", "surrogatepass"), digest_size=4).hexdigest()
    return f"{readable}-{digest}"


def _parse_time(text: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def short_time(text: str) -> str:
    t = _parse_time(text)
    return t.strftime("%Y-%m-%d %H:%M") if t else clean(text, 40)


# --------------------------------------------------------------------------- objects


class ChangeMark:
    """A change shown on a case row."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text


class CaseRow(NamedTuple):
    """One case, ready to print (a tuple: templates unpack it, which is fast for 10⁵ rows)."""

    id: str  # HTML id: "<cell slug>-c<index>"
    name: str
    status: str
    duration: str
    slowdown: str
    metrics: list[tuple[str, str]]
    message: str
    output: str
    flaky: bool
    issue_reason: str
    issue_link: str
    changes: list[ChangeMark]
    group: str  # one of GROUPS
    case_index: int  # position in the cell's case list


_BAD: Final = frozenset(s for s in Status if s.is_bad)


def case_row(
    case: CaseResult, cell_slug: str, index: int, slowdown: float | None, changes: list[ChangeMark]
) -> CaseRow:
    bad = case.status in _BAD
    if bad and not case.known_issue:
        group = "new-failure"
    elif case.flaky:
        group = "flaky"
    elif bad:
        group = "known-issue"
    else:
        group = "other"
    reason, link = split_issue(case.known_issue) if case.known_issue else ("", "")
    return CaseRow(
        f"{cell_slug}-c{index}",
        clean(case.name, 1000),
        case.status.value,
        seconds(case.duration),
        ratio(slowdown),
        metric_pairs(case.metrics) if case.metrics else [],
        clean(case.message) if case.message else _timeout_note(case),
        clean(case.output) if case.output else "",
        case.flaky,
        reason,
        link,
        changes,
        group,
        index,
    )


def _timeout_note(case: CaseResult) -> str:
    """Under auto case timeouts, a case without a message shows its timeout and both timings."""
    note = case.timeout.get("note") if case.timeout else None
    return clean(note) if isinstance(note, str) else ""


@dataclasses.dataclass
class Section:
    """Consecutive rows of one group on one page."""

    group: str
    title: str
    total: int  # rows of this group in the whole cell
    rows: list[CaseRow]


@dataclasses.dataclass
class CellView:
    cell: CellResult
    slug: str
    target: str
    suite: str
    verdict: str
    cases: int
    counts: dict[str, int]
    groups: dict[str, int]  # rows per group
    passed: int
    wall: str
    slowdown: str
    message: str
    log: str
    attempts: int
    changed: dict[str, int]  # change kind -> cases of this cell with that change
    settings: list[tuple[str, str]]
    rows: list[CaseRow]
    pages: list[str] = dataclasses.field(default_factory=list)  # file names (in cells/) when split
    _positions: dict[str, int] | None = None

    def position_of(self, case: str) -> int | None:
        """Where the case named ``case`` is in ``rows``."""
        if self._positions is None:
            names = self.cell.cases
            self._positions = {names[r.case_index].name: pos for pos, r in enumerate(self.rows)}
        return self._positions.get(case)

    @property
    def any_change(self) -> bool:
        return any(self.changed.values())

    @property
    def bad_text(self) -> str:
        """ "3 failed, 1 timeout" from the counts of bad statuses."""
        return ", ".join(
            f"{self.counts[s]} {s}" for s in ("failed", "error", "timeout", "crashed", "xpassed") if self.counts[s]
        )

    def sections(self, start: int, stop: int) -> list[Section]:
        out: list[Section] = []
        for row in self.rows[start:stop]:
            if not out or out[-1].group != row.group:
                out.append(Section(row.group, GROUP_TITLES[row.group], self.groups[row.group], []))
            out[-1].rows.append(row)
        return out


@dataclasses.dataclass
class TargetView:
    info: TargetInfo
    name: str
    description: str
    error: str
    emulation: str
    color: str
    arch: str
    passed: int
    total: int
    wall: str
    slowdown: str
    verdicts: dict[str, int]
    facts: list[tuple[str, str]]
    extensions: list[str]
    packages: list[tuple[str, str]]
    extra: list[tuple[str, str]]


@dataclasses.dataclass
class ChangeRow:
    kind: str
    target: str
    suite: str
    case: str
    before: str
    after: str
    ratio: str
    href: str
    reason: str = ""  # which test decided a timing change


@dataclasses.dataclass
class ChangeKind:
    kind: str
    title: str
    total: int
    rows: list[ChangeRow]


@dataclasses.dataclass
class FailureRow:
    cell: CellView
    row: CaseRow
    position: int  # in cell.rows
    message: str  # last line of the failure message


#: Colours of targets in charts and legends (Tableau 10, readable on white).
PALETTE: Final = [
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
]


def target_colors(run: Run) -> dict[str, str]:
    return {t.name: PALETTE[i % len(PALETTE)] for i, t in enumerate(run.targets)}


def _facts(t: TargetInfo) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    f = t.facts
    if f is None:
        rows = [("kind", t.kind), ("arch (declared)", t.arch)]
        return [(k, clean(v, 500)) for k, v in rows if v], [], [], []
    os_text = f.os_name or " ".join(x for x in (f.os_id, f.os_version) if x)
    rows = [
        ("kind", t.kind),
        ("emulation", f.emulation),
        ("arch", f.arch),
        ("ISA", f.isa),
        ("QEMU CPU model", f.cpu_model),
        ("OS", os_text),
        ("kernel", f.kernel),
        ("libc", f.libc),
        ("Python", f.python),
    ]
    facts = [(k, clean(str(v), 500)) for k, v in rows if v]
    extensions = [clean(str(e), 100) for e in f.extensions]
    packages = [(clean(str(k), 200), clean(str(v), 200)) for k, v in sorted(f.packages.items())]
    extra = [(clean(str(k), 200), clean(str(v), 500)) for k, v in sorted(f.extra.items())]
    return facts, extensions, packages, extra


# --------------------------------------------------------------------------- the report


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
        if case.endswith("]") and " [" in case and view.position_of(case) is None:
            case = case[: case.rindex(" [")]  # a metric change: "case [metric]"
        pos = view.position_of(case)
        return self.row_href(view, pos) if pos is not None else self.cell_href(view)


def _index_changes(comparison: Comparison | None) -> dict[tuple[str, str, str], list[CaseChange]]:
    """Changes by (target, suite, case); a metric change ``"case [metric]"`` belongs to ``case``."""
    out: dict[tuple[str, str, str], list[CaseChange]] = {}
    if comparison is None:
        return out
    for ch in comparison.changes:
        out.setdefault((ch.target, ch.suite, ch.case), []).append(ch)
        if ch.case.endswith("]") and " [" in ch.case:
            base = ch.case[: ch.case.rindex(" [")]
            out.setdefault((ch.target, ch.suite, base), []).append(ch)
    return out


def kind_class(kind: str) -> str:
    """The CSS class suffix of a change kind; a kind the report does not know is "other"."""
    return kind if kind in CHANGE_TITLES else "other"


def _mark(ch: CaseChange, base_run: str, case: str) -> ChangeMark:
    what = ""
    if ch.case != case and ch.case.startswith(case + " ["):
        what = ch.case[len(case) + 1 :] + " "  # "[metric] "
    ratio_text = f" {ratio(ch.ratio)}" if ch.ratio else ""
    kind = clean(ch.kind, 100).replace("-", " ")
    why = f" ({ch.reason})" if ch.reason else ""
    text = f"{kind} {what}since {base_run}: {ch.before or '—'} → {ch.after or '—'}{ratio_text}{why}"
    return ChangeMark(kind_class(ch.kind), clean(text, 600))


def build(
    run: Run,
    *,
    comparison: Comparison | None = None,
    history: Iterable[RunSummary] | None = None,
    settings: Mapping[str, Mapping[str, Metric]] | None = None,
) -> Report:
    changes_by_case = _index_changes(comparison)
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
    failures: list[FailureRow] = []
    failures_total = known_total = flaky_total = 0
    cell_ratios: dict[tuple[str, str], float] = {}
    for cell in run.cells:
        slowdowns = case_slowdowns(run, cell)
        cell_ratio = cell_slowdown(run, cell)
        if cell_ratio is not None:
            cell_ratios[(cell.target, cell.suite)] = cell_ratio
        cell_slug = slug(cell.target, cell.suite)
        counts = cell.counts()
        for k, v in counts.items():
            totals[k] += v
        rows: list[CaseRow] = []
        changed = dict.fromkeys(CHANGE_ORDER, 0)
        for i, case in enumerate(cell.cases):
            marks: list[ChangeMark] = []
            if changes_by_case:
                for ch in changes_by_case.get((cell.target, cell.suite, case.name), ()):
                    marks.append(_mark(ch, base_run, case.name))
                    changed[ch.kind] = changed.get(ch.kind, 0) + 1
            rows.append(case_row(case, cell_slug, i, slowdowns.get(case.name), marks))
        groups = dict.fromkeys(GROUPS, 0)
        for r in rows:
            groups[r.group] += 1
        failures_total += groups["new-failure"]
        known_total += groups["known-issue"]
        flaky_total += groups["flaky"]
        # Stable sort: groups in display order, the run's case order within a group.
        rank = {g: i for i, g in enumerate(GROUPS)}
        rows.sort(key=lambda r: rank[r.group])
        view = CellView(
            cell=cell,
            slug=cell_slug,
            target=clean(cell.target, 200),
            suite=clean(cell.suite, 200),
            verdict=cell.verdict.value,
            cases=len(cell.cases),
            counts=counts,
            groups=groups,
            passed=counts[Status.PASSED.value],
            wall=seconds(cell.wall),
            slowdown=ratio(cell_ratio),
            message=clean(cell.message, 4000),
            log=clean(cell.log, MAX_LOG),
            attempts=cell.attempts,
            changed=changed,
            settings=settings_view.get(cell.suite, []),
            rows=rows,
        )
        cells.append(view)
        by_key[(cell.target, cell.suite)] = view

    # Failures to look at: bad, no known issue; the first few of every cell before more of any.
    per_cell = [[i for i, r in enumerate(cv.rows) if r.group == "new-failure"] for cv in cells]
    depth = 0
    while len(failures) < MAX_FAILURES_SHOWN and any(depth < len(p) for p in per_cell):
        for cv, p in zip(cells, per_cell, strict=True):
            if depth < len(p) and len(failures) < MAX_FAILURES_SHOWN:
                r = cv.rows[p[depth]]
                lines = r.message.strip().splitlines()
                failures.append(FailureRow(cv, r, p[depth], lines[-1][:300] if lines else ""))
        depth += 1

    suites = run.suites
    matrix = [(clean(s, 200), [by_key.get((t, s)) for t in target_names]) for s in suites]

    colors = target_colors(run)
    targets: list[TargetView] = []
    for name in target_names:
        info = run.target(name) or TargetInfo(name=name, kind="?")
        mine = [cv for cv in cells if cv.cell.target == name]
        facts, extensions, packages, extra = _facts(info)
        verdicts = {v.value: 0 for v in Verdict}
        for cv in mine:
            verdicts[cv.verdict] += 1
        targets.append(
            TargetView(
                info=info,
                name=clean(name, 200),
                description=clean(info.description, 1000),
                error=clean(info.error, 4000),
                emulation=clean(info.facts.emulation if info.facts else "", 100),
                color=colors.get(name, PALETTE[len(targets) % len(PALETTE)]),
                arch=clean((info.facts.arch if info.facts else "") or info.arch, 100),
                passed=sum(cv.passed for cv in mine),
                total=sum(cv.cases for cv in mine),
                wall=seconds(sum(cv.cell.wall for cv in mine)),
                slowdown=ratio(geometric_mean([r for (t, _), r in cell_ratios.items() if t == name])),
                verdicts=verdicts,
                facts=facts,
                extensions=extensions,
                packages=packages,
                extra=extra,
            )
        )

    started, finished = _parse_time(run.started), _parse_time(run.finished)
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
        targets=targets,
        suites=suites,
        matrix=matrix,
        cells=cells,
        totals=totals,
        total_cases=sum(totals.values()),
        verdicts={v.value: sum(1 for c in run.cells if c.verdict is v) for v in Verdict},
        failures=failures,
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
    comparison = report.comparison
    if comparison is None:
        return []
    by_kind: dict[str, list[CaseChange]] = {}
    for ch in comparison.changes:
        by_kind.setdefault(ch.kind, []).append(ch)
    out = []
    for kind in [*CHANGE_ORDER, *sorted(k for k in by_kind if k not in CHANGE_ORDER)]:
        items = by_kind.get(kind, [])
        if not items:
            continue
        if kind == "slower":
            items = sorted(items, key=lambda c: -(c.ratio or 0))
        elif kind == "faster":
            items = sorted(items, key=lambda c: c.ratio or 0)
        rows = [
            ChangeRow(
                kind=kind_class(kind),
                target=clean(ch.target, 200),
                suite=clean(ch.suite, 200),
                case=clean(ch.case, 1000),
                before=clean(ch.before, 200),
                after=clean(ch.after, 200),
                ratio=ratio(ch.ratio),
                href=report.case_href(ch.target, ch.suite, ch.case),
                reason=clean(ch.reason, 300) if ch.case else "",
            )
            for ch in items[:MAX_CHANGES_SHOWN]
        ]
        out.append(ChangeKind(kind_class(kind), CHANGE_TITLES.get(kind, clean(kind, 100)), len(items), rows))
    return out


# --------------------------------------------------------------------------- triage


#: Target-only failures listed in the index page's triage section.
MAX_TRIAGE_SHOWN: Final = 100


@dataclasses.dataclass
class TriageRow:
    """A target-only failure beside the baseline's result of the same case."""

    cell: CellView
    row: CaseRow
    position: int  # in cell.rows
    baseline: str  # "passed in 250 ms"
    difference: tuple[str, str, str] | None  # (line number, target's line, baseline's line)
    packages: list[tuple[str, str, str]]  # (package, target's version, baseline's version)
    repro: str = ""  # the `leapfrog repro` line that runs the case again (set by render_html)


@dataclasses.dataclass
class TriageView:
    counts: list[tuple[str, int, str]]  # (class, cases, what it means), classes with cases only
    total: int
    target_only: list[TriageRow]
    target_only_total: int


def _text(value: object, limit: int = 300) -> str:
    return clean(str(value), limit) if value is not None else ""


def _triage_row(cv: CellView, position: int, evidence: Mapping[str, object]) -> TriageRow:
    status, duration = evidence.get("baseline_status"), finite(evidence.get("baseline_duration"))
    baseline = _text(status, 40) or "no result"
    if duration is not None:
        baseline += f" in {seconds(float(duration))}"
    diff = evidence.get("first_difference")
    difference = None
    if isinstance(diff, Mapping):
        difference = (_text(diff.get("line"), 12), _text(diff.get("target")), _text(diff.get("baseline")))
    packages = []
    table = evidence.get("packages")
    if isinstance(table, Mapping):
        for name, sides in list(table.items())[:50]:
            if isinstance(sides, Mapping):
                packages.append((_text(name, 200), _text(sides.get("target"), 200), _text(sides.get("baseline"), 200)))
    return TriageRow(cv, cv.rows[position], position, baseline, difference, packages)


def triage_view(report: Report) -> TriageView:
    """Cases per triage class, and the target-only failures with their evidence (bounded).

    The triage is read from the cases (``harness.triage`` set it); a class this
    version does not know is counted as it is named, its text cleaned.
    """
    from harness.triage import CLASSES, MEANINGS, TARGET_ONLY

    counts: dict[str, int] = {}
    rows: list[TriageRow] = []
    target_only_total = 0
    for cv in report.cells:
        cases = cv.cell.cases
        for position, row in enumerate(cv.rows):
            triage = cases[row.case_index].triage
            if not isinstance(triage, Mapping):
                continue
            klass = _text(triage.get("class"), 60)
            counts[klass] = counts.get(klass, 0) + 1
            if klass == TARGET_ONLY:
                target_only_total += 1
                evidence = triage.get("evidence")
                if len(rows) < MAX_TRIAGE_SHOWN:
                    rows.append(_triage_row(cv, position, evidence if isinstance(evidence, Mapping) else {}))
    order = [k for k in CLASSES if k in counts] + sorted(k for k in counts if k not in CLASSES)
    return TriageView(
        counts=[(k, counts[k], MEANINGS.get(k, "")) for k in order],
        total=sum(counts.values()),
        target_only=rows,
        target_only_total=target_only_total,
    )
