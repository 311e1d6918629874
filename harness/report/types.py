"""Data the report shows beyond one run: what changed, and the history trend."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CaseChange:
    """One difference between a run and the run it is compared with."""

    target: str
    suite: str
    case: str
    #: "new-failure" | "fixed" | "slower" | "faster" | "noise" | "new" | "gone", or for a whole cell
    #: (``case`` empty) "verdict-worse" | "verdict-better" | "verdict".
    kind: str
    before: str  # status, verdict, or duration/metric text, before
    after: str
    ratio: float | None = None
    #: Which test decided a timing change ("+19 ms < 50 ms floor", "within history spread …").
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Comparison:
    base_run_id: str
    run_id: str
    changes: list[CaseChange]

    def for_case(self, target: str, suite: str, case: str) -> list[CaseChange]:
        return [c for c in self.changes if (c.target, c.suite, c.case) == (target, suite, case)]


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One past run, for trend charts."""

    run_id: str
    started: str
    per_target: dict[str, tuple[int, int, float]]  # target -> (passed, total, summed case seconds)
