"""Typed records of comparing runs: what one run says, the rules, and what changed.

Shared by :mod:`harness.compare` (which makes them), :mod:`harness.history`
(which reads snapshots and spreads from its database) and :mod:`harness.report`
(which shows them); none of those imports another for its types.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

CaseKey = tuple[str, str, str]  # target, suite, case
MetricKey = tuple[str, str, str, str]  # target, suite, case, metric
CellKey = tuple[str, str]  # target, suite


class Snapshot(NamedTuple):
    """What one run says, as comparing needs it: case (status, seconds, known issue), numeric metrics, verdicts."""

    cases: dict[CaseKey, tuple[str, float, str]]
    metrics: dict[MetricKey, float]
    verdicts: dict[CellKey, str] = {}  # noqa: RUF012 - a NamedTuple default, never mutated


@dataclasses.dataclass(frozen=True)
class Spread:
    """Values of cases and metrics in earlier runs (run id -> value), read from the history."""

    durations: dict[CaseKey, dict[str, float]] = dataclasses.field(default_factory=dict)
    metrics: dict[MetricKey, dict[str, float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Rules:
    """When a difference is a change, and when a change is a regression (options of `leapfrog compare`)."""

    #: Worse by this ratio (new over old seconds, or old over new rate) to be a change at all.
    threshold: float = 1.5
    #: Seconds a case duration, or a single timing metric (``*_ms``, ``*_s``), must change by.
    min_change: float = 0.05
    #: Seconds a median over repeats (a metric with a p90 beside it) must change by.
    min_median_change: float = 0.001
    #: Earlier runs a rate (``*_per_s``, qps) needs in the history before it can be a regression:
    #: a rate has no unit-free absolute floor, so only its spread can tell noise.
    min_history: int = 3
    #: How many earlier runs of the same target and suite give the spread.
    history: int = 5


DEFAULT_RULES = Rules()


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
