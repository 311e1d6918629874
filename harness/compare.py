"""Numbers derived from runs: slowdown of a target against the baseline, and what changed between two runs.

Pure functions of :mod:`harness.model` runs and :mod:`harness.records`; the
history feeds them from its database and the report shows what they return.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from harness.model import CaseResult, CellResult, Run, Status
from harness.records import DEFAULT_RULES, CaseChange, CellKey, Comparison, MetricKey, Rules, Snapshot, Spread

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


# --------------------------------------------------------------------------- comparing two runs
#
# A change is a regression only when it clears the noise: a ratio, an absolute
# floor, and the spread seen before (the last runs of the same target and suite
# in the history, or the repeats a case records: a median beside its p90).
# Every judged change carries the reason that decided it.

_TIME_UNITS: Final = (("_ns", 1e-9), ("_us", 1e-6), ("_ms", 1e-3), ("_seconds", 1.0), ("_s", 1.0))
#: Cell verdicts from best to worst; infra-error and not-run give no result at all.
_VERDICT_RANK: Final = {"compatible": 0, "partial": 1, "incompatible": 2, "infra-error": 3, "not-run": 3}


def lower_is_better(key: str) -> bool | None:
    """Latency-like metrics get worse going up, throughput-like going down; others are not judged."""
    k = key.lower()
    # Rates first: "tcp_echo_mb_per_s" ends in "_s" too, and more of it is better.
    if k.endswith(("qps", "_per_s", "_per_sec", "throughput", "_ips")) or k in ("ips", "fps"):
        return False
    if k.endswith(("_ms", "_us", "_s", "_seconds", "latency")) or k in ("ms", "seconds"):
        return True
    return None


def time_scale(key: str) -> float | None:
    """Seconds per unit of a timing metric ("p90_ms" -> 0.001), None when its unit is not a time."""
    k = key.lower()
    if k in ("ms", "seconds"):
        return 1e-3 if k == "ms" else 1.0
    for suffix, scale in _TIME_UNITS:
        if k.endswith(suffix):
            return scale
    return None


def _p90_of(key: str) -> str | None:
    return key.replace("median", "p90") if "median" in key else None


def _secs(value: float) -> str:
    a = abs(value)
    if a >= 1:
        return f"{value:.1f} s"
    if a >= 1e-3:
        return f"{value * 1e3:.0f} ms"
    return f"{value * 1e6:.0f} µs"


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "-") + _secs(abs(value))


def _judge(
    old: float,
    new: float,
    *,
    worse: float,
    floor: float | None,
    scale: float,
    earlier: list[float],
    repeat_noise: float,
    rules: Rules,
    fmt: Callable[[float], str],
) -> tuple[str, str]:
    """Kind ("slower", "faster" or "noise") and the reason, for a change whose ratio cleared the threshold.

    ``old``/``new``/``earlier`` are in the metric's own unit; ``scale`` turns a difference into
    seconds (0 for a rate, which has no time floor); ``worse`` is the ratio, > 1 when worse.
    """
    direction = "slower" if worse > 1 else "faster"
    shown = worse if worse > 1 else 1 / worse
    decided = [f"{shown:.1f}× ≥ {rules.threshold:g}×"]
    delta = abs(new - old) * scale
    if floor is not None:
        if delta < floor:
            return "noise", f"{_signed((new - old) * scale)} < {_secs(floor)} floor"
        decided.append(f"{_signed((new - old) * scale)} ≥ {_secs(floor)} floor")
    values = sorted(earlier)
    if len(values) >= 2:
        lo, hi = values[0], values[-1]
        within = abs(new - old) <= hi - lo
        where = f"history spread {fmt(lo)}–{fmt(hi)} over {len(values)} runs"
        if within:
            return "noise", f"within {where}"
        decided.append(f"beyond {where}")
    if repeat_noise > 0:
        if delta <= repeat_noise:
            return "noise", f"within the repeats' spread (p90 - median {_secs(repeat_noise)})"
        decided.append(f"beyond the repeats' spread (p90 - median {_secs(repeat_noise)})")
    if floor is None and len(values) < rules.min_history:
        return "noise", (
            f"not judged: a rate needs {rules.min_history} earlier runs for its spread, the history has {len(values)}"
        )
    if len(values) < 2 and repeat_noise <= 0:
        decided.append("no spread in the history yet")
    return direction, "; ".join(decided)


def _earlier(spread: dict[str, float], base_id: str, base_value: float) -> list[float]:
    values = dict(spread)
    values.setdefault(base_id, base_value)
    return list(values.values())


def _verdict_change(key: CellKey, before: str, after: str) -> CaseChange:
    b, a = _VERDICT_RANK.get(before, 3), _VERDICT_RANK.get(after, 3)
    kind = "verdict-worse" if a > b else "verdict-better" if a < b else "verdict"
    return CaseChange(key[0], key[1], "", kind, before, after, reason=f"cell verdict {before} -> {after}")


def diff(
    base: Snapshot,
    new: Snapshot,
    *,
    base_id: str,
    new_id: str,
    rules: Rules = DEFAULT_RULES,
    spread: Spread | None = None,
) -> Comparison:
    """What changed from ``base`` to ``new``: verdicts, failures, fixes, slower and faster cases and metrics.

    A slower case or worse metric is kind "slower" (a regression) only when it clears ``rules``
    and the ``spread`` of earlier runs; otherwise it is kind "noise", with the reason.
    """
    spread = spread or Spread()
    b_cases, b_metrics, b_verdicts = base
    n_cases, n_metrics, n_verdicts = new
    changes: list[CaseChange] = [
        _verdict_change(cell, b_verdicts[cell], n_verdicts[cell])
        for cell in sorted(set(b_verdicts) & set(n_verdicts))
        if b_verdicts[cell] != n_verdicts[cell]
    ]
    cells_in_both = {(t, s) for t, s, _ in b_cases} & {(t, s) for t, s, _ in n_cases}
    for key in sorted(set(b_cases) | set(n_cases)):
        t, s, name = key
        if (t, s) not in cells_in_both:
            continue  # a cell one run did not run at all is not a change of the software
        before, after = b_cases.get(key), n_cases.get(key)
        if before is None and after is not None:
            changes.append(CaseChange(t, s, name, "new", "", after[0]))
            if Status(after[0]).is_bad and not after[2]:
                changes.append(CaseChange(t, s, name, "new-failure", "(absent)", after[0]))
            continue
        if after is None and before is not None:
            changes.append(CaseChange(t, s, name, "gone", before[0], ""))
            continue
        assert before is not None
        assert after is not None
        if not Status(before[0]).is_bad and Status(after[0]).is_bad and not after[2]:
            changes.append(CaseChange(t, s, name, "new-failure", before[0], after[0]))
        elif Status(before[0]).is_bad and not Status(after[0]).is_bad:
            changes.append(CaseChange(t, s, name, "fixed", before[0], after[0]))
        elif before[0] == after[0] == "passed" and before[1] > 0 and after[1] > 0:
            ratio = after[1] / before[1]
            if 1 / rules.threshold < ratio < rules.threshold:
                continue
            kind, reason = _judge(
                before[1],
                after[1],
                worse=ratio,
                floor=rules.min_change,
                scale=1.0,
                earlier=_earlier(spread.durations.get(key, {}), base_id, before[1]),
                repeat_noise=0.0,
                rules=rules,
                fmt=lambda v: f"{v:.3f}s",
            )
            changes.append(CaseChange(t, s, name, kind, f"{before[1]:.3f}s", f"{after[1]:.3f}s", ratio, reason))
    for mkey in sorted(set(b_metrics) & set(n_metrics)):
        if change := _metric_change(mkey, b_metrics, n_metrics, base_id, spread, rules):
            changes.append(change)
    return Comparison(base_run_id=base_id, run_id=new_id, changes=changes)


def _metric_change(
    mkey: MetricKey,
    b_metrics: dict[MetricKey, float],
    n_metrics: dict[MetricKey, float],
    base_id: str,
    spread: Spread,
    rules: Rules,
) -> CaseChange | None:
    t, s, name, metric = mkey
    direction = lower_is_better(metric)
    old, now = b_metrics[mkey], n_metrics[mkey]
    if direction is None or old <= 0 or now <= 0:
        return None
    worse = now / old if direction else old / now
    if 1 / rules.threshold < worse < rules.threshold:
        return None
    scale = time_scale(metric) if direction else None
    floor: float | None = None
    noise = 0.0
    if scale is not None:
        p90 = _p90_of(metric)
        pkey = (t, s, name, p90) if p90 else None
        if pkey and pkey in b_metrics and pkey in n_metrics:  # a median over repeats, its p90 beside it
            floor = rules.min_median_change
            noise = max(b_metrics[pkey] - old, n_metrics[pkey] - now, 0.0) * scale
        else:
            floor = rules.min_change
    kind, reason = _judge(
        old,
        now,
        worse=worse,
        floor=floor,
        scale=scale or 0.0,
        earlier=_earlier(spread.metrics.get(mkey, {}), base_id, old),
        repeat_noise=noise,
        rules=rules,
        fmt=lambda v: f"{v:g}",
    )
    return CaseChange(t, s, f"{name} [{metric}]", kind, f"{old:g}", f"{now:g}", worse, reason)


def regressions(comparison: Comparison) -> list[CaseChange]:
    """The changes that make `leapfrog compare` exit 1: new failures, worse verdicts, slower beyond the noise."""
    return [c for c in comparison.changes if c.kind in REGRESSION_KINDS]


REGRESSION_KINDS: Final = ("new-failure", "verdict-worse", "slower")
