"""A cell of the report: its case rows, grouped (failures without a known issue first), and its counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final, NamedTuple

from harness.model import CaseResult, CellResult, Status
from harness.records import CaseChange
from harness.report.changes import CHANGE_ORDER, ChangeMark, mark
from harness.report.text import clean, metric_pairs, ratio, seconds, slug, split_issue

#: Characters of a cell's pytest log shown.
MAX_LOG: Final = 20_000

STATUS_ORDER: Final = [s.value for s in Status]
#: Case groups, in the order a cell shows them.
GROUPS: Final = ["new-failure", "flaky", "known-issue", "other"]
GROUP_TITLES: Final = {
    "new-failure": "Failures without a known issue",
    "flaky": "Flaky (failed, then passed on a re-run)",
    "known-issue": "Known issues (expected failures)",
    "other": "Passed, skipped and expected",
}


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


def workers_text(cell: CellResult) -> str:
    """How many workers the cell ran with, and how they were asked for: "2 (auto)", "3 (asked 4)",
    "1 (asked 4: suite.toml says parallel = false)"; just "2" when it ran as asked (or an older file does not say)."""
    asked = cell.workers_asked
    how = "auto" if asked == "auto" else "" if asked is None or asked == cell.workers else f"asked {asked}"
    if cell.workers_note:
        how = f"{how}: {cell.workers_note}" if how else cell.workers_note
    return clean(f"{cell.workers} ({how})" if how else str(cell.workers), 300)


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
    workers: str  # "2 (auto)": how many pytest processes ran its cases, and how they were asked for (workers_text)
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


def cell_view(
    cell: CellResult,
    *,
    slowdowns: Mapping[str, float],
    cell_ratio: float | None,
    changes: Mapping[tuple[str, str, str], list[CaseChange]],
    base_run: str,
    settings: list[tuple[str, str]],
) -> CellView:
    """The cell's view: a row per case with its changes since ``base_run``, rows in group order."""
    cell_slug = slug(cell.target, cell.suite)
    counts = cell.counts()
    rows: list[CaseRow] = []
    changed = dict.fromkeys(CHANGE_ORDER, 0)
    for i, case in enumerate(cell.cases):
        marks: list[ChangeMark] = []
        if changes:
            for ch in changes.get((cell.target, cell.suite, case.name), ()):
                marks.append(mark(ch, base_run, case.name))
                changed[ch.kind] = changed.get(ch.kind, 0) + 1
        rows.append(case_row(case, cell_slug, i, slowdowns.get(case.name), marks))
    groups = dict.fromkeys(GROUPS, 0)
    for r in rows:
        groups[r.group] += 1
    # Stable sort: groups in display order, the run's case order within a group.
    rank = {g: i for i, g in enumerate(GROUPS)}
    rows.sort(key=lambda r: rank[r.group])
    return CellView(
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
        workers=workers_text(cell),
        changed=changed,
        settings=settings,
        rows=rows,
    )
