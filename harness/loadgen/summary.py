"""Numbers of a serving run: LoadGen's percentile rule, a served answer against its golden value,
and LoadGen's ``mlperf_log_summary.txt`` read as a :class:`Summary`."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any

from harness.errors import LeapfrogError

SCENARIOS = ("SingleStream", "Server", "Offline")


class ServingError(LeapfrogError):
    """A serving suite could not start, reach or drive its server."""


# ----------------------------------------------------------------------------- numbers


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0 <= p < 1) the way LoadGen reports it: ``sorted[int(n * p)]``.

    No interpolation (LoadGen's ``results.cc`` indexes the sorted latencies), so
    latencies measured inside LoadGen's span compare element by element.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"percentile {p} is outside [0, 1)")
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)]


def max_abs_error(got: Sequence[Sequence[float]], want: Any) -> float:
    """Largest ``|got - want|`` over all elements; ``inf`` when shapes differ or a value is not finite."""
    import numpy as np

    try:
        g = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return math.inf
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        return math.inf
    if g.size == 0:
        return 0.0
    diff = np.abs(g - w)
    if not np.all(np.isfinite(diff)):
        return math.inf
    return float(diff.max())


def golden_mismatch(got: Sequence[Sequence[float]], want: Any, atol: float) -> str | None:
    """``None`` when every element of ``got`` is within ``atol`` of ``want``; else why not."""
    err = max_abs_error(got, want)
    if err <= atol:
        return None
    if math.isinf(err):
        shape = getattr(want, "shape", None)
        return f"answer has the wrong shape or a non-finite value (golden shape {shape})"
    return f"max abs error {err:.3g} exceeds the tolerance {atol:g}"


# ----------------------------------------------------------------------------- LoadGen summary


@dataclasses.dataclass(frozen=True)
class Summary:
    """What ``mlperf_log_summary.txt`` says (latencies in nanoseconds)."""

    scenario: str
    mode: str
    result: str  # "VALID" or "INVALID"; "" when the file has no result line
    constraints: dict[str, bool]  # "Min duration satisfied" -> True, ...
    qps: float | None  # completed samples per second (per scenario, see parse_summary)
    percentiles_ns: dict[float, int]  # 50.0 -> ns, 90.0 -> ns, ...
    min_ns: int | None
    max_ns: int | None
    mean_ns: int | None
    recommendations: list[str]
    early_stopping: list[str]
    errors: bool  # LoadGen logged errors during the test

    @property
    def valid(self) -> bool:
        return self.result == "VALID"

    def latency_ms(self, pct: float) -> float | None:
        ns = self.percentiles_ns.get(pct)
        return None if ns is None else ns / 1e6

    def unmet(self) -> list[str]:
        """The constraints LoadGen says were not satisfied."""
        return [name for name, ok in self.constraints.items() if not ok]

    def explain(self) -> str:
        """Why the result is what it is, in LoadGen's words (for a failure message)."""
        parts = [f"LoadGen {self.scenario}: {self.result or 'no result'}"]
        if self.unmet():
            parts.append("not satisfied: " + "; ".join(self.unmet()))
        parts += [f"early stopping: {line}" for line in self.early_stopping]
        parts += [f"recommendation: {line}" for line in self.recommendations]
        return "\n".join(parts)


_FIELD = re.compile(r"^\s*(?P<key>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")
_ERRORS = re.compile(r"^\d+ ERRORS? encountered", re.IGNORECASE)
_PERCENTILE = re.compile(r"^(?P<pct>\d+(?:\.\d+)?) percentile latency \(ns\)$")
#: The summary line that carries throughput, by scenario (the first one present wins).
_QPS_KEYS = {
    "SingleStream": ("QPS w/ loadgen overhead", "QPS w/o loadgen overhead"),
    "MultiStream": ("Samples per query",),
    "Server": ("Completed samples per second", "Scheduled samples per second"),
    "Offline": ("Samples per second",),
}


def _number(text: str) -> float | None:
    try:
        return float(text.split(maxsplit=1)[0])
    except (ValueError, IndexError):
        return None


def parse_summary(text: str) -> Summary:
    """Read LoadGen's summary log.  Unknown lines are ignored; a missing field is ``None``.

    Throughput is "QPS w/ loadgen overhead" for SingleStream, "Completed samples per
    second" for Server (older LoadGen: "Scheduled samples per second") and "Samples
    per second" for Offline.  The bullets under "Recommendations:" and "Early
    Stopping Result:" are kept (continuation lines joined), for failure messages.
    """
    fields: dict[str, str] = {}
    constraints: dict[str, bool] = {}
    percentiles: dict[float, int] = {}
    blocks: dict[str, list[str]] = {"Recommendations": [], "Early Stopping Result": []}
    block: list[str] | None = None
    errors = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("==="):
            block = None
            continue
        if line.endswith(":") and line[:-1] in blocks:
            block = blocks[line[:-1]]
            continue
        if block is not None:
            if line.startswith("*"):
                block.append(line.lstrip("* ").strip())
                continue
            if block and not _FIELD.match(line):
                block[-1] += " " + line
                continue
            block = None
        if _ERRORS.match(line):
            errors = True
        m = _FIELD.match(line)
        if not m:
            continue
        key, value = m.group("key"), m.group("value")
        if key.endswith("satisfied"):
            constraints[key] = value.lower() == "yes"
            continue
        pm = _PERCENTILE.match(key)
        if pm:
            ns = _number(value)
            if ns is not None:
                percentiles[float(pm.group("pct"))] = int(ns)
            continue
        fields.setdefault(key, value)
    scenario = fields.get("Scenario", "")
    qps = None
    for key in _QPS_KEYS.get(scenario, ()):
        if key in fields:
            qps = _number(fields[key])
            break

    def nanoseconds(key: str) -> int | None:
        value = _number(fields.get(key, ""))
        return None if value is None else int(value)

    return Summary(
        scenario=scenario,
        mode=fields.get("Mode", ""),
        result=fields.get("Result is", ""),
        constraints=constraints,
        qps=qps,
        percentiles_ns=percentiles,
        min_ns=nanoseconds("Min latency (ns)"),
        max_ns=nanoseconds("Max latency (ns)"),
        mean_ns=nanoseconds("Mean latency (ns)"),
        recommendations=blocks["Recommendations"],
        early_stopping=blocks["Early Stopping Result"],
        errors=errors,
    )
