"""What changed since an earlier run: the marks on case rows and the "Changes since" tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

from harness.records import CaseChange, Comparison
from harness.report.text import clean, ratio

#: Rows per kind of change listed on the index page.
MAX_CHANGES_SHOWN: Final = 200

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


class ChangeMark:
    """A change shown on a case row."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text


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


def metric_case(name: str) -> str | None:
    """The case a metric change (``"case [metric]"``) belongs to; None for a case's own name."""
    return name[: name.rindex(" [")] if name.endswith("]") and " [" in name else None


def index_changes(comparison: Comparison | None) -> dict[tuple[str, str, str], list[CaseChange]]:
    """Changes by (target, suite, case); a metric change ``"case [metric]"`` belongs to ``case``."""
    out: dict[tuple[str, str, str], list[CaseChange]] = {}
    if comparison is None:
        return out
    for ch in comparison.changes:
        out.setdefault((ch.target, ch.suite, ch.case), []).append(ch)
        base = metric_case(ch.case)
        if base is not None:
            out.setdefault((ch.target, ch.suite, base), []).append(ch)
    return out


def kind_class(kind: str) -> str:
    """The CSS class suffix of a change kind; a kind the report does not know is "other"."""
    return kind if kind in CHANGE_TITLES else "other"


def mark(ch: CaseChange, base_run: str, case: str) -> ChangeMark:
    what = ""
    if ch.case != case and ch.case.startswith(case + " ["):
        what = ch.case[len(case) + 1 :] + " "  # "[metric] "
    ratio_text = f" {ratio(ch.ratio)}" if ch.ratio else ""
    kind = clean(ch.kind, 100).replace("-", " ")
    why = f" ({ch.reason})" if ch.reason else ""
    text = f"{kind} {what}since {base_run}: {ch.before or '—'} → {ch.after or '—'}{ratio_text}{why}"
    return ChangeMark(kind_class(ch.kind), clean(text, 600))


def change_tables(comparison: Comparison | None, href: Callable[[str, str, str], str]) -> list[ChangeKind]:
    """The "Changes since" tables, bounded; ``href(target, suite, case)`` links a row to where its case is shown."""
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
                href=href(ch.target, ch.suite, ch.case),
                reason=clean(ch.reason, 300) if ch.case else "",
            )
            for ch in items[:MAX_CHANGES_SHOWN]
        ]
        out.append(ChangeKind(kind_class(kind), CHANGE_TITLES.get(kind, clean(kind, 100)), len(items), rows))
    return out
