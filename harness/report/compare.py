"""Numbers derived from a run: slowdown of a target against the baseline."""

from __future__ import annotations

import math

from harness.model import CaseResult, CellResult, Run, Status

#: Cases faster than this are too short to compare without noise dominating.
MIN_DURATION = 0.0005


def _passed(cases: list[CaseResult]) -> dict[str, CaseResult]:
    return {c.name: c for c in cases if c.status is Status.PASSED}


def cell_slowdown(run: Run, cell: CellResult) -> float | None:
    """Sum of durations of cases that passed on both, target over baseline."""
    if not run.baseline or cell.target == run.baseline:
        return None
    base = run.cell(run.baseline, cell.suite)
    if base is None:
        return None
    ours, theirs = _passed(cell.cases), _passed(base.cases)
    common = [n for n in ours if n in theirs]
    t_ours = sum(ours[n].duration for n in common)
    t_base = sum(theirs[n].duration for n in common)
    if not common or t_base < MIN_DURATION:
        return None
    return t_ours / t_base


def case_slowdowns(run: Run, cell: CellResult) -> dict[str, float]:
    if not run.baseline or cell.target == run.baseline:
        return {}
    base = run.cell(run.baseline, cell.suite)
    if base is None:
        return {}
    theirs = {c.name: c for c in base.cases}
    out = {}
    for c in cell.cases:
        b = theirs.get(c.name)
        if b and c.status is Status.PASSED and b.status is Status.PASSED and b.duration >= MIN_DURATION:
            out[c.name] = c.duration / b.duration
    return out


def target_slowdown(run: Run, target: str) -> float | None:
    """Geometric mean of the cell slowdowns of one target."""
    return geometric_mean([r for c in run.cells if c.target == target and (r := cell_slowdown(run, c))])


def geometric_mean(ratios: list[float]) -> float | None:
    if not ratios:
        return None
    return float(math.exp(sum(math.log(r) for r in ratios) / len(ratios)))
