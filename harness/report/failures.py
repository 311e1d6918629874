"""The index page's failures to look at: the first failures without a known issue, and the triage section."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Final

from harness.model import finite
from harness.report.cells import CaseRow, CellView
from harness.report.text import clean, seconds

#: Failures listed in the index page's "Failures to look at".
MAX_FAILURES_SHOWN: Final = 100
#: Target-only failures listed in the index page's triage section.
MAX_TRIAGE_SHOWN: Final = 100


@dataclasses.dataclass
class FailureRow:
    cell: CellView
    row: CaseRow
    position: int  # in cell.rows
    message: str  # last line of the failure message


def failures_to_look_at(cells: Sequence[CellView]) -> list[FailureRow]:
    """Bad cases without a known issue, bounded: the first few of every cell before more of any."""
    failures: list[FailureRow] = []
    per_cell = [[i for i, r in enumerate(cv.rows) if r.group == "new-failure"] for cv in cells]
    depth = 0
    while len(failures) < MAX_FAILURES_SHOWN and any(depth < len(p) for p in per_cell):
        for cv, p in zip(cells, per_cell, strict=True):
            if depth < len(p) and len(failures) < MAX_FAILURES_SHOWN:
                r = cv.rows[p[depth]]
                lines = r.message.strip().splitlines()
                failures.append(FailureRow(cv, r, p[depth], lines[-1][:300] if lines else ""))
        depth += 1
    return failures


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


def triage_of(cells: Sequence[CellView]) -> TriageView:
    """Cases per triage class, and the target-only failures with their evidence (bounded).

    The triage is read from the cases (``harness.triage`` set it); a class this
    version does not know is counted as it is named, its text cleaned.
    """
    from harness.triage import CLASSES, MEANINGS, TARGET_ONLY

    counts: dict[str, int] = {}
    rows: list[TriageRow] = []
    target_only_total = 0
    for cv in cells:
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
