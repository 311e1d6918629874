"""Workers: one in-target cell split over several pytest processes in the target.

:func:`plan_workers` says how many processes a cell gets, or why it stays
serial; :func:`weights` gives each case's expected seconds from the baseline's
cell of the same suite, for the probe to balance the split
(``leapfrog_session.py``).  :func:`make` gives each worker a :class:`Lane` (its
environment and files), :func:`run_all` runs them at once, a thread each around
``target.run`` (:mod:`harness.cell` drives each lane's passes and crash
resumes); :func:`merged` puts the workers' cases back in the order one process
runs them and :func:`collection_problem` says when the workers did not collect
the same cases.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from harness.model import CaseResult, CellResult, Status

#: ``--workers`` / suite.toml ``workers``: a number of processes, or ``"auto"`` (the target's usable cores).
Workers = int | Literal["auto"]

#: Used when neither the command line nor suite.toml says.
DEFAULT_WORKERS: Workers = 1

#: Most processes one cell is split over.
MAX_WORKERS = 64


@dataclasses.dataclass(frozen=True)
class WorkerPlan:
    """How many pytest processes a cell runs at once, and why it runs one when more were asked for."""

    count: int
    #: Why the cell stays serial though more were asked for ("" otherwise).
    serial_because: str = ""
    #: What was asked: ``--workers``, else suite.toml's ``workers``, else :data:`DEFAULT_WORKERS`.
    asked: Workers = DEFAULT_WORKERS


def host_cores() -> int:
    """The host's usable cores (its CPU affinity, where the platform says)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def plan_workers(
    *,
    kind: str,
    parallel: bool,
    suite_workers: Workers | None,
    requested: Workers | None,
    cores: Callable[[], int],
    cases: int | None = None,
) -> WorkerPlan:
    """The processes for one cell.

    ``requested`` (``--workers``) wins over ``suite_workers`` (suite.toml),
    which wins over :data:`DEFAULT_WORKERS`; ``"auto"`` is ``cores()`` (asked
    only then).  A host-driven suite and a suite with ``parallel = false``
    always run one process.  ``cases``, when known (the baseline's cell of the
    suite in this run), caps the count: a worker without a case is not started.
    """
    want: Workers = requested if requested is not None else suite_workers or DEFAULT_WORKERS
    if want == 1:
        return WorkerPlan(1, asked=want)
    if kind == "host-driven":
        return WorkerPlan(1, "a host-driven suite runs serially (one pytest process on the host)", want)
    if not parallel:
        return WorkerPlan(1, "suite.toml says parallel = false", want)
    count = cores() if want == "auto" else int(want)
    if cases is not None:
        count = min(count, max(cases, 1))
    count = max(1, min(count, MAX_WORKERS))
    if count == 1:
        return WorkerPlan(1, "one usable core" if want == "auto" else "one case", want)
    return WorkerPlan(count, asked=want)


#: Outcomes whose durations say how long a case takes (a crashed or timed-out case's does not).
_TIMED = (Status.PASSED, Status.FAILED, Status.XFAILED, Status.XPASSED, Status.SKIPPED, Status.ERROR)


def weights(baseline: CellResult | None) -> dict[str, float]:
    """Each case's duration in the baseline's cell of the suite, for balancing the split ({} without one)."""
    if baseline is None:
        return {}
    return {
        c.name: c.duration
        for c in baseline.cases
        if c.status in _TIMED and math.isfinite(c.duration) and c.duration >= 0 and "::" in c.name
    }


def top_level(baseline: CellResult | None) -> int | None:
    """How many pytest cases the baseline's cell of the suite ran (its child cases not counted); None without one."""
    if baseline is None or not baseline.cases:
        return None
    names = {c.name for c in baseline.cases}

    def child(name: str) -> bool:
        parts = name.split("::")
        return any("::".join(parts[:i]) in names for i in range(2, len(parts)))

    return sum(1 for n in names if not child(n))


def merge(lanes: Sequence[tuple[Iterable[CaseResult], Mapping[str, int]]]) -> dict[str, CaseResult]:
    """The workers' cases as one process gives them: by position in the whole collection.

    Each lane is (its cases in the order recorded, position by name).  A child
    case (``<case>::<child>``, recorded just before its case) goes just before
    its case; a case with no position (a collection error, which every worker
    reports alike) goes first, as pytest reports it before any case runs.  A
    name two workers both recorded is kept once, the first lane's.
    """
    keyed: list[tuple[float, int, int, CaseResult]] = []
    seen: set[str] = set()
    for lane, (cases, positions) in enumerate(lanes):
        for seq, c in enumerate(cases):
            if c.name in seen:
                continue
            seen.add(c.name)
            keyed.append((_place(c.name, positions), lane, seq, c))
    keyed.sort(key=lambda k: k[:3])
    return {k[3].name: k[3] for k in keyed}


def _place(name: str, positions: Mapping[str, int]) -> float:
    if name in positions:
        return float(positions[name])
    parts = name.split("::")
    for i in range(len(parts) - 1, 1, -1):
        parent = "::".join(parts[:i])
        if parent in positions:
            return positions[parent] - 0.5
    return -1.0


def same_whole(wholes: Iterable[str]) -> bool:
    """Whether the workers that said what they collected collected the same whole."""
    return len({w for w in wholes if w}) <= 1


@dataclasses.dataclass
class Lane:
    """One pytest process of a cell (worker ``index`` of ``of``), pass after pass, and what it recorded."""

    index: int
    of: int
    env: dict[str, str]
    results: str  # its results file in the cell folder
    done_file: str  # its cases already recorded, for the probe to deselect when the lane resumes after a crash
    done: dict[str, CaseResult]
    positions: dict[str, int] = dataclasses.field(default_factory=dict)  # in the whole collection
    whole: str = ""  # the whole collection, as this worker saw it
    passes: int = 0
    message: str = ""  # why it ended early
    error: BaseException | None = None  # what its thread raised


def make(env: dict[str, str], base: str, done: dict[str, CaseResult], workers: int) -> list[Lane]:
    """The cell's lanes: one writing ``results.jsonl`` into ``done`` (as ever), or one per worker.

    A worker has its own results and done files and ``LEAPFROG_WORKER=K/N``;
    only the first asks for the target's facts.
    """
    if workers <= 1:
        return [Lane(0, 1, env, "results.jsonl", "done.txt", done)]
    out = []
    for k in range(workers):
        results, done_file = f"results-{k}.jsonl", f"done-{k}.txt"
        lane_env = {
            **env,
            "LEAPFROG_WORKER": f"{k}/{workers}",
            "LEAPFROG_RESULTS": f"{base}/{results}",
            "LEAPFROG_DONE": f"{base}/{done_file}",
        }
        if k:
            lane_env.pop("LEAPFROG_FACTS", None)
        out.append(Lane(k, workers, lane_env, results, done_file, {}))
    return out


def run_all(lanes: Sequence[Lane], passes: Callable[[Lane], None], stop: Callable[[], None]) -> None:
    """Run ``passes(lane)`` for every lane at once, a thread each; raise the first lane's error once all are done.

    On Ctrl-C (or any error in this thread) ``stop()`` ends the target, so
    every worker's pytest ends, and the threads are waited for before it rises.
    """

    def one(lane: Lane) -> None:
        try:
            passes(lane)
        except BaseException as e:  # raised below, in the caller's thread
            lane.error = e

    threads = [
        threading.Thread(target=one, args=(ln,), name=f"leapfrog-worker-{ln.index}", daemon=True) for ln in lanes
    ]
    for th in threads:
        th.start()
    try:
        for th in threads:
            while th.is_alive():
                th.join(0.5)
    except BaseException:
        try:
            stop()
        finally:
            for th in threads:
                th.join(30)
        raise
    errors = [ln.error for ln in lanes if ln.error is not None]
    if errors:
        raise errors[0]


#: A worker's message when its share of the cases was empty (dropped when another worker ran cases).
NOTHING = "no tests were collected"


def merged(lanes: Sequence[Lane]) -> tuple[dict[str, CaseResult], str]:
    """The workers' cases in one process's order (:func:`merge`), and the cell's message from theirs."""
    done = merge([(ln.done.values(), ln.positions) for ln in lanes])
    messages = dict.fromkeys(ln.message for ln in lanes if ln.message)
    if done:
        messages.pop(NOTHING, None)
    return done, "\n".join(messages)


def collection_problem(lanes: Sequence[Lane], suite_file: Path) -> str:
    """Why the cell is infra-error when its workers collected different cases ("" when they agree)."""
    if same_whole(ln.whole for ln in lanes):
        return ""
    return (
        f"the {len(lanes)} workers of this cell collected different cases, so their shares may overlap or "
        f"miss cases; leapfrog made the cell infra-error. Make the suite's collection deterministic, or set "
        f'"parallel = false" in {suite_file}.'
    )
