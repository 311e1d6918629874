"""The profile comparison: one image run under several CPU models (ISA profiles) in the same run.

Targets that ran the same image (``TargetInfo.image``) under two or more QEMU
CPU models (``TargetFacts.cpu_model``; rva20, rva22, rva23, a VLEN variant)
form a group.  For each group the report shows:

- the cases whose outcome differs between the profiles, each profile's status;
- the metrics that differ (golden-output errors first, then other values, then
  timings), every profile's value and the relative spread
  ``(max - min) / max(|max|, |min|)``;
- the speed of each profile per suite: total and median duration of the cases
  that passed on every profile (and on the reference, when it ran the suite),
  each profile against the first, against the reference (the run's baseline,
  ``native``), and the slowest against the fastest.

A pure function of the :class:`~harness.model.Run`; no group at all when no
image ran under two CPU models.  Everything shown came from targets: cleaned and
bounded here (rows capped, with how many were left out), escaped by the templates.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Final

from harness.model import CaseResult, CellResult, Metric, Run, TargetInfo, finite
from harness.report.text import clean, number, ratio, seconds

#: Groups, profiles per group, and rows per table shown (the rest is counted, not listed).
MAX_GROUPS: Final = 10
MAX_PROFILES: Final = 12
MAX_OUTCOME_ROWS: Final = 200
MAX_METRIC_ROWS: Final = 200
#: How a metric is classed, in the order the table lists them.
METRIC_KINDS: Final = ("golden error", "value", "timing")
#: A case a profile's cell does not have (the cell has cases, but not this one).
ABSENT: Final = "absent"

#: Links a (target, suite, case) to where the case is shown; "" when nowhere.
Href = Callable[[str, str, str], str]


@dataclasses.dataclass
class Profile:
    """One target of a group: its CPU model and what it does with vectors."""

    target: str
    cpu_model: str
    qemu: str  # the QEMU version
    isa: str
    blas: str  # the BLAS at run time (OpenBLAS configuration and core), or numpy's build-time BLAS
    simd: str  # numpy's SIMD extensions


@dataclasses.dataclass
class OutcomeRow:
    suite: str
    case: str
    statuses: list[tuple[str, str]]  # per profile: (status, link to the case) ; ("", "") when its cell has no cases
    reference: str  # the reference's status, "" without one


@dataclasses.dataclass
class MetricRow:
    suite: str
    case: str
    metric: str
    kind: str  # one of METRIC_KINDS
    values: list[str]  # per profile, "" when that profile did not record it
    spread: str  # relative spread of numbers, "" when a value is not a number
    spread_value: float | None


@dataclasses.dataclass
class SpeedRow:
    suite: str
    cases: int  # cases passed on every compared profile (and on the reference)
    totals: list[str]
    medians: list[str]
    vs_first: list[str]  # each profile's total over the first profile's
    vs_reference: list[str]  # each profile's total over the reference's
    reference_total: str
    reference_median: str
    spread: str  # "slowest ×N over fastest"


@dataclasses.dataclass
class ProfileGroup:
    image: str
    profiles: list[Profile]
    profiles_left_out: int
    reference: str  # the reference target's name, "" without one
    outcomes: list[OutcomeRow]
    outcomes_total: int
    metrics: list[MetricRow]
    metrics_total: int
    metric_counts: dict[str, int]  # differing metrics per kind, all of them
    speed: list[SpeedRow]
    notes: list[str]  # cells left out of the comparison, and why


def _cpu(t: TargetInfo) -> str:
    f = t.facts
    return (f.cpu_model or f.extra.get("qemu_cpu", "")) if f else ""


def profile_sets(run: Run) -> list[tuple[str, list[TargetInfo]]]:
    """(image, targets) for each image that ran under two or more CPU models, in the run's order."""
    by_image: dict[str, list[TargetInfo]] = {}
    for t in run.targets:
        if t.image and t.facts is not None and _cpu(t):
            by_image.setdefault(t.image, []).append(t)
    return [(image, ts) for image, ts in by_image.items() if len({_cpu(t) for t in ts}) >= 2]


def _profile(t: TargetInfo) -> Profile:
    f = t.facts
    extra = f.extra if f else {}
    return Profile(
        target=clean(t.name, 200),
        cpu_model=clean(_cpu(t), 300),
        qemu=clean(extra.get("qemu_version", ""), 100),
        isa=clean(f.isa if f else "", 500),
        blas=clean(extra.get("blas_runtime") or extra.get("numpy_blas", ""), 300),
        simd=clean(extra.get("numpy_simd", ""), 200),
    )


def metric_kind(name: str) -> str:
    """A metric's kind: "golden error" (``max_abs_err``, ``mismatches``), "timing" (``_ms``, ``gflops``), or "value"."""
    last = name.lower().rsplit(".", 1)[-1]
    if last.endswith(("_err", "_error", "mismatches", "_ulp")) or last in ("err", "error"):
        return "golden error"
    speed = ("_ms", "_us", "_ns", "_s", "_seconds", "_per_s", "_per_sec", "qps", "flops", "throughput", "latency")
    if last.endswith(speed):
        return "timing"
    return "value"


def relative_spread(values: Sequence[Metric]) -> float | None:
    """``(max - min) / max(|max|, |min|)`` of numbers (0 when all are 0); None when one is not a number."""
    numbers = [finite(v) for v in values]
    if not numbers or any(n is None for n in numbers):
        return None
    nums = [float(n) for n in numbers if n is not None]
    low, high = min(nums), max(nums)
    scale = max(abs(low), abs(high))
    return (high - low) / scale if scale else 0.0


def _percent(r: float | None) -> str:
    if r is None:
        return ""
    return f"{r * 100:.3g} %" if r >= 0.001 else f"{r * 100:.2e} %"


def _outcomes(suite: str, cells: list[CellResult | None], ref: CellResult | None, href: Href) -> list[OutcomeRow]:
    """Rows of the cases whose status differs between the profiles that have cases for ``suite``."""
    by_name = [{c.name: c for c in cell.cases} if cell and cell.cases else None for cell in cells]
    ref_cases = {c.name: c for c in ref.cases} if ref else {}
    names: dict[str, None] = {}
    for cases in by_name:
        names.update(dict.fromkeys(cases or {}))
    rows = []
    for name in names:
        seen = {(cases[name].status.value if name in cases else ABSENT) for cases in by_name if cases is not None}
        if len(seen) < 2:
            continue
        statuses = []
        for cell, cases in zip(cells, by_name, strict=True):
            if cell is None or cases is None:
                statuses.append(("", ""))
            elif name in cases:
                statuses.append((cases[name].status.value, href(cell.target, suite, name)))
            else:
                statuses.append((ABSENT, ""))
        ref_case = ref_cases.get(name)
        rows.append(
            OutcomeRow(clean(suite, 200), clean(name, 500), statuses, ref_case.status.value if ref_case else "")
        )
    return rows


def _same(a: Metric, b: Metric) -> bool:
    """Equal values: numbers by value (1 == 1.0), anything else by value and type (True is not 1)."""
    if finite(a) is not None and finite(b) is not None:
        return float(a) == float(b)
    return a == b and type(a) is type(b)


def _metrics(suite: str, cells: list[CellResult | None]) -> list[MetricRow]:
    """Rows of the metrics recorded by two or more profiles for the same case whose values differ."""
    by_name = [{c.name: c for c in cell.cases} if cell else {} for cell in cells]
    names: dict[str, None] = {}
    for cases in by_name:
        names.update(dict.fromkeys(cases))
    rows = []
    for name in names:
        present: list[CaseResult | None] = [cases.get(name) for cases in by_name]
        keys: dict[str, None] = {}
        for case in present:
            keys.update(dict.fromkeys(case.metrics if case else {}))
        for key in keys:
            values = [case.metrics.get(key) if case else None for case in present]
            known = [v for v in values if v is not None]
            if len(known) < 2 or all(_same(v, known[0]) for v in known):
                continue
            spread = relative_spread(known)
            rows.append(
                MetricRow(
                    suite=clean(suite, 200),
                    case=clean(name, 500),
                    metric=clean(key, 300),
                    kind=metric_kind(key),
                    values=["" if v is None else number(v) for v in values],
                    spread=_percent(spread),
                    spread_value=spread,
                )
            )
    return rows


def _speed(suite: str, names: list[str], cells: list[CellResult | None], ref: CellResult | None) -> SpeedRow | None:
    """Per-profile totals and medians over the cases passed on every compared profile (and the reference)."""
    compared = [(n, c) for n, c in zip(names, cells, strict=True) if c is not None and c.cases]
    if len(compared) < 2:
        return None
    passed = [{k.name: k.duration for k in c.cases if k.status.value == "passed"} for _, c in compared]
    ref_passed = {k.name: k.duration for k in ref.cases if k.status.value == "passed"} if ref and ref.cases else None
    common = [k for k in passed[0] if all(k in p for p in passed[1:]) and (ref_passed is None or k in ref_passed)]
    totals = [sum(p[k] for k in common) for p in passed]
    medians = [statistics.median([p[k] for k in common]) if common else 0.0 for p in passed]
    ref_total = sum(ref_passed[k] for k in common) if ref_passed is not None else 0.0
    by_name = dict(zip((n for n, _ in compared), range(len(compared)), strict=True))
    row = SpeedRow(clean(suite, 200), len(common), [], [], [], [], "", "", "")
    for n in names:
        i = by_name.get(n)
        if i is None or not common:
            row.totals.append("")
            row.medians.append("")
            row.vs_first.append("")
            row.vs_reference.append("")
            continue
        row.totals.append(seconds(totals[i]))
        row.medians.append(seconds(medians[i]))
        row.vs_first.append(ratio(totals[i] / totals[0]) if totals[0] > 0 else "")
        row.vs_reference.append(ratio(totals[i] / ref_total) if ref_total > 0 else "")
    if common and ref_passed is not None:
        row.reference_total = seconds(ref_total)
        row.reference_median = seconds(statistics.median([ref_passed[k] for k in common]))
    if common and min(totals) > 0:
        slow, fast = totals.index(max(totals)), totals.index(min(totals))
        row.spread = (
            f"{clean(compared[slow][0], 200)} {ratio(totals[slow] / totals[fast])} over {clean(compared[fast][0], 200)}"
        )
    return row


def _group(run: Run, image: str, targets: list[TargetInfo], href: Href) -> ProfileGroup:
    shown = targets[:MAX_PROFILES]
    names = [t.name for t in shown]
    ref_info = run.target(run.baseline) if run.baseline not in names else None
    reference = ref_info.name if ref_info is not None and ref_info.image != image else ""
    outcomes: list[OutcomeRow] = []
    metrics: list[MetricRow] = []
    speed: list[SpeedRow] = []
    notes: list[str] = []
    for suite in run.suites:
        cells = [run.cell(n, suite) for n in names]
        if sum(1 for c in cells if c is not None) < 2:
            continue
        for n, c in zip(names, cells, strict=True):
            if c is not None and not c.cases:
                notes.append(f"{clean(suite, 200)} on {clean(n, 200)}: {c.verdict.value}, no cases to compare")
        ref = run.cell(reference, suite) if reference else None
        outcomes += _outcomes(suite, cells, ref, href)
        metrics += _metrics(suite, cells)
        row = _speed(suite, names, cells, ref)
        if row is not None:
            speed.append(row)
    rank = {k: i for i, k in enumerate(METRIC_KINDS)}
    metrics.sort(key=lambda m: (rank[m.kind], -(m.spread_value if m.spread_value is not None else -1.0)))
    counts = {k: sum(1 for m in metrics if m.kind == k) for k in METRIC_KINDS}
    return ProfileGroup(
        image=clean(image, 300),
        profiles=[_profile(t) for t in shown],
        profiles_left_out=len(targets) - len(shown),
        reference=clean(reference, 200),
        outcomes=outcomes[:MAX_OUTCOME_ROWS],
        outcomes_total=len(outcomes),
        metrics=metrics[:MAX_METRIC_ROWS],
        metrics_total=len(metrics),
        metric_counts=counts,
        speed=speed,
        notes=notes[:50],
    )


def _no_link(_target: str, _suite: str, _case: str) -> str:
    return ""


def profile_groups(run: Run, href: Href = _no_link) -> list[ProfileGroup]:
    """The comparison of every image that ran under two or more CPU models (at most :data:`MAX_GROUPS`)."""
    return [_group(run, image, targets, href) for image, targets in profile_sets(run)[:MAX_GROUPS]]
