"""Case timeouts scaled from the baseline: ``case_timeout = "auto"`` or ``--case-timeout auto``.

A case's timeout on a target other than the baseline is::

    its duration on the baseline  ×  the target's slowdown  ×  MARGIN

at least :data:`FLOOR` and at most the cap (the suite's cell ``timeout``: a
case cannot run longer than its cell anyway).  The baseline's duration is the
one of this run's baseline cell of the same suite (the runner runs it first);
only a case the baseline *passed* has one.  A case without one gets the
fallback: the suite's numeric ``case_timeout`` (300 s when suite.toml says
``"auto"``), capped too.  The baseline's own cases run under the fallback.

The slowdown comes from, in this order:

1. ``run``: this run, the geometric mean of the slowdowns of the target's cells
   already finished (as the report computes it, :func:`harness.compare.target_slowdown`);
2. ``history``: the newest recorded run of the history database that holds
   the target and the same baseline with a measurable slowdown: the same
   suite's cell slowdown there, else that run's target slowdown;
3. ``default``: :data:`EMULATED_SLOWDOWN` for a target that emulates or runs
   another architecture (qemu-user, qemu-system, a board), 1 for a target of the
   host's architecture that does not (a chroot or container of it).

All functions here are pure except :func:`from_history`, which reads the
database (read-only; a missing file is no history).
"""

from __future__ import annotations

import dataclasses
import math
import platform
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from harness.compare import cell_slowdown, target_slowdown
from harness.config import SuiteConfig, TargetConfig
from harness.model import CaseResult, CellResult, Run, Status, Verdict

#: The estimate (baseline × slowdown) is multiplied by this: a case's own slowdown
#: varies around the target's (pure Python about 11×, numpy about 18× under qemu-user).
MARGIN: Final = 3.0
#: No case gets less than this many seconds: a case of a few milliseconds natively
#: may spend seconds in first-run costs under emulation (qemu translating new code).
FLOOR: Final = 10.0
#: The slowdown assumed for an emulated target with no measurement in this run or
#: the history: above the slowest measured in BENCHMARKS.md ("Emulation choices":
#: qemu-user 18× to 25×, qemu-system 45× on the numpy suite's cases).
EMULATED_SLOWDOWN: Final = 50.0
#: Runs of the history searched (newest first) for a slowdown.
HISTORY_RUNS: Final = 50

#: Debian's architecture names and what ``platform.machine()`` says for them.
_MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "i386": "i686", "ppc64el": "ppc64le"}


@dataclasses.dataclass(frozen=True)
class Slowdown:
    """How much slower the target is than the baseline, and where that number came from."""

    factor: float
    source: str  # "run", "history" or "default"
    detail: str = ""  # history: "run <id>, suite <name>" or "run <id>"; default: why

    def describe(self) -> str:
        if self.source == "run":
            return "this run"
        if self.source == "history":
            return self.detail
        return f"default, {self.detail}" if self.detail else "default"


@dataclasses.dataclass(frozen=True)
class CaseTimeout:
    """One case's timeout under auto, with what it was computed from."""

    seconds: float
    baseline_duration: float | None  # None: no baseline duration, the fallback applies
    slowdown: Slowdown
    bound: str = ""  # "floor" or "cap" when it applied; "fallback" without a baseline duration

    def formula(self, baseline: str) -> str:
        """``auto timeout 12.4 s = 0.08 s on native × 51× slowdown (this run) × 3`` and the bound."""
        if self.baseline_duration is None:
            return f"auto timeout {self.seconds:g} s: no passed baseline duration, the suite's fixed case timeout"
        text = (
            f"auto timeout {self.seconds:g} s = {self.baseline_duration:.3g} s on {baseline or 'the baseline'} × "
            f"{self.slowdown.factor:.3g}× slowdown ({self.slowdown.describe()}) × {MARGIN:g}"
        )
        if self.bound == "floor":
            text += f", raised to the floor of {FLOOR:g} s"
        elif self.bound == "cap":
            text += f", lowered to the cap of {self.seconds:g} s (the suite's cell timeout)"
        return text

    def to_dict(self, baseline: str, took: float | None = None) -> dict[str, Any]:
        """What ``case["timeout"]`` holds in results.json (see docs/results-schema.md)."""
        note = self.formula(baseline)
        if took is not None:
            note += f"; ran {took:.3g} s here"
        return {
            "seconds": self.seconds,
            "source": "auto" if self.baseline_duration is not None else "fallback",
            "baseline": baseline,
            "baseline_duration": self.baseline_duration,
            "slowdown": self.slowdown.factor,
            "slowdown_from": self.slowdown.source,
            "slowdown_detail": self.slowdown.describe(),
            "margin": MARGIN,
            "bound": self.bound,
            "note": note,
        }


@dataclasses.dataclass(frozen=True)
class AutoTimeouts:
    """The timeouts of one cell: per case, and the fallback for every other case."""

    cases: dict[str, CaseTimeout]
    fallback: CaseTimeout

    def for_case(self, name: str) -> CaseTimeout:
        return self.cases.get(name, self.fallback)

    def probe_table(self) -> dict[str, Any]:
        """What the probe reads (``LEAPFROG_CASE_TIMEOUTS``): ``{"default": s, "cases": {nodeid: s}}``."""
        return {"default": self.fallback.seconds, "cases": {n: t.seconds for n, t in self.cases.items()}}


def bounded(duration: float, factor: float, *, cap: float) -> tuple[float, str]:
    """``duration × factor × MARGIN`` rounded up to 0.1 s, within [FLOOR, cap]; and which bound applied.

    The cap wins over the floor (a suite whose cell timeout is below the floor).
    """
    floor = FLOOR
    raw = math.ceil(duration * factor * MARGIN * 10 - 1e-9) / 10
    if raw > cap:
        return cap, "cap"
    if raw < floor:
        return min(floor, cap), "floor" if floor <= cap else "cap"
    return raw, ""


def baseline_durations(cell: CellResult | None) -> dict[str, float]:
    """Durations of the cases the baseline passed (flaky ones included: they passed in the end)."""
    if cell is None:
        return {}
    return {c.name: c.duration for c in cell.cases if c.status is Status.PASSED}


def compute(baseline_cell: CellResult | None, slowdown: Slowdown, *, fallback: float, cap: float) -> AutoTimeouts:
    """Every case's timeout on one target from the baseline's cell of the same suite."""
    cases = {}
    for name, duration in baseline_durations(baseline_cell).items():
        seconds, bound = bounded(duration, slowdown.factor, cap=cap)
        cases[name] = CaseTimeout(seconds, duration, slowdown, bound)
    return AutoTimeouts(cases, CaseTimeout(min(fallback, cap), None, slowdown, "fallback"))


def for_cell(
    run: Run,
    target: TargetConfig,
    suite: SuiteConfig,
    history: dict[tuple[str, str], Slowdown] | None = None,
    *,
    host_machine: str | None = None,
) -> AutoTimeouts:
    """The timeouts of (target, suite) under auto, from ``run`` as it stands, then history, then the default."""
    slowdown = slowdown_for(run, target, suite.name, history or {}, host_machine=host_machine)
    base = run.cell(run.baseline, suite.name) if run.baseline else None
    return compute(base, slowdown, fallback=suite.case_timeout, cap=suite.timeout)


def slowdown_for(
    run: Run,
    target: TargetConfig,
    suite: str,
    history: dict[tuple[str, str], Slowdown],
    *,
    host_machine: str | None = None,
) -> Slowdown:
    """This run's slowdown of the target, else the history's for (target, suite), else the default."""
    now = target_slowdown(run, target.name)
    if now is not None:
        return Slowdown(now, "run")
    known = history.get((target.name, suite))
    if known is not None:
        return known
    return default_slowdown(target, host_machine)


def default_slowdown(target: TargetConfig, host_machine: str | None = None) -> Slowdown:
    """:data:`EMULATED_SLOWDOWN` unless the target runs the host's architecture without a VM or board."""
    host = host_machine if host_machine is not None else platform.machine()
    arch = _MACHINE.get(target.arch, target.arch)
    if target.kind == "native" or (target.kind in ("chroot", "docker") and arch in ("", host)):
        return Slowdown(1.0, "default", f"{target.kind} on the host's architecture")
    return Slowdown(
        EMULATED_SLOWDOWN, "default", f"{target.kind} {target.arch or 'target'}, emulated or another machine"
    )


def from_history(db: Path, baseline: str, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Slowdown]:
    """For each (target, suite): the slowdown of the newest recorded run with ``baseline`` that measures one.

    Read-only: a database that does not exist is no history (it is not
    created).  Raises ``sqlite3.Error`` for a file that is not one.
    """
    wanted = set(pairs)
    if not baseline or not wanted or not db.is_file():
        return {}
    found: dict[tuple[str, str], Slowdown] = {}
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        runs = conn.execute(
            "SELECT run_id FROM runs WHERE baseline = ? ORDER BY started DESC LIMIT ?", (baseline, HISTORY_RUNS)
        ).fetchall()
        targets = sorted({t for t, _ in wanted})
        for (run_id,) in runs:
            left = {p for p in wanted if p not in found}
            if not left:
                break
            names = ",".join("?" * (len(targets) + 1))
            rows = conn.execute(
                f"SELECT target, suite, name, duration FROM cases WHERE run_id = ? AND status = 'passed' "  # noqa: S608 (placeholders only)
                f"AND target IN ({names})",
                (run_id, baseline, *targets),
            ).fetchall()
            past = _passed_run(str(run_id), baseline, rows)
            for target, suite in sorted(left):
                cell = past.cell(target, suite)
                ratio = cell_slowdown(past, cell) if cell is not None else None
                if ratio is not None:
                    found[(target, suite)] = Slowdown(ratio, "history", f"run {run_id}, suite {suite}")
                    continue
                overall = target_slowdown(past, target)
                if overall is not None:
                    found[(target, suite)] = Slowdown(overall, "history", f"run {run_id}")
    finally:
        conn.close()
    return found


def _passed_run(run_id: str, baseline: str, rows: Iterable[tuple[Any, ...]]) -> Run:
    """A :class:`Run` of only the passed cases of a recorded run (what slowdowns are measured on)."""
    cells: dict[tuple[str, str], CellResult] = {}
    for target, suite, name, duration in rows:
        cell = cells.setdefault((str(target), str(suite)), CellResult(str(target), str(suite), Verdict.COMPATIBLE))
        cell.cases.append(CaseResult(str(name), Status.PASSED, float(duration or 0.0)))
    return Run(run_id=run_id, started="", baseline=baseline, cells=list(cells.values()))


def annotate(cases: Iterable[CaseResult], timeouts: AutoTimeouts, baseline: str) -> None:
    """Record on each case the timeout it ran under (``case.timeout``); a ``timeout`` case's message gets the note.

    The note gives both timings: the baseline's duration (in the formula) and
    how long the case ran here.
    """
    for case in cases:
        entry = timeouts.for_case(case.name)
        ran = case.duration if case.duration > 0 else (entry.seconds if case.status is Status.TIMEOUT else None)
        case.timeout = entry.to_dict(baseline, ran)
        if case.status is Status.TIMEOUT and case.timeout["note"] not in case.message:
            case.message = f"{case.message}\n{case.timeout['note']}" if case.message else case.timeout["note"]


def is_auto(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower() == "auto"
