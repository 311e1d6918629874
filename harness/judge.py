"""The pass judgment: what a pytest pass, a cell and a failed start come to.  Pure functions.

:mod:`harness.cell` runs pytest in a target, maybe several times (a case that
kills its interpreter is recorded and the suite resumes after it); after each
pass :func:`judge_pass` says, from pytest's exit and what the probe wrote,
whether the cell is finished, why it ended early, and which case died.  The
runner (:mod:`harness.runner`) asks :func:`retry_start` and :func:`retry_cell`
whether a broken target is started again, and records what could not run with
:func:`unstarted` and :func:`lost`.  Nothing here runs anything or reads a file.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from harness.errors import LeapfrogError, TargetError
from harness.model import CaseResult, CellResult, Status, Verdict, verdict_for
from harness.probe_lines import TIMEOUT_MARK, ProbeOutput, tail

if TYPE_CHECKING:
    from harness.autotimeout import AutoTimeouts
    from harness.targets.base import Completed

#: Characters of pytest's stderr kept as the output of a case that died.
VICTIM_OUTPUT = 8000


def signal_name(sig: int | None) -> str:
    """The name of signal ``sig`` ("SIGSEGV" for 11); "" for none; "signal 99" for a number no signal has."""
    if not sig:
        return ""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


@dataclasses.dataclass(frozen=True)
class Judgment:
    """What one pytest pass means for its cell."""

    #: The cell ends after this pass (else pytest runs again, resuming after ``victim``).
    finished: bool
    #: Why the cell ended early, for the cell's message ("" when it simply ended).
    message: str = ""
    #: The case that was running when the process died or was killed: crashed or timeout.
    victim: CaseResult | None = None


def judge_pass(
    proc: Completed,
    out: ProbeOutput,
    done: Collection[str],
    *,
    cell_timeout: float,
    case_timeout: float,
    timeouts: AutoTimeouts | None = None,
) -> Judgment:
    """Judge one pass: pytest ended as ``proc`` says, the probe wrote ``out``, ``done`` are the cases recorded.

    ``cell_timeout`` is the suite's budget (the host killed the pass when
    ``proc.timed_out``); a case killed by the probe's watchdog (``TIMEOUT_MARK``
    on stderr) exceeded its own timeout: ``timeouts.for_case`` under auto
    timeouts, else ``case_timeout``.
    """
    dying = [n for n in out.started if n not in done]
    if proc.ok or (proc.exit_code == 1 and out.ended):
        return Judgment(finished=True)
    if proc.exit_code == 5 and not done:
        return Judgment(finished=True, message="no tests were collected")
    if proc.exit_code in (2, 3, 4) and out.ended and not dying:
        return Judgment(
            finished=True,
            message=f"pytest ended with exit code {proc.exit_code} (interrupted, internal or usage error)",
        )
    if not dying:
        if proc.timed_out:
            return Judgment(finished=True, message=f"the cell timed out after {cell_timeout:.0f} s")
        return Judgment(
            finished=True,
            message=f"pytest died before any case started (exit {proc.exit_code}, "
            f"signal {signal_name(proc.signal) or 'none'})",
        )
    victim = dying[0]
    if proc.timed_out:
        status, why = Status.TIMEOUT, f"killed by the host: the cell exceeded {cell_timeout:.0f} s"
    elif TIMEOUT_MARK in proc.stderr:
        limit = timeouts.for_case(victim).seconds if timeouts else case_timeout
        status, why = Status.TIMEOUT, f"exceeded the case timeout of {limit:g} s (stuck in native code)"
    else:
        how = signal_name(proc.signal) or f"exit code {proc.exit_code}"
        status, why = Status.CRASHED, f"the Python process died during this case ({how})"
    died = CaseResult(name=victim, status=status, duration=0.0, message=why, output=tail(proc.stderr, VICTIM_OUTPUT))
    if proc.timed_out:
        return Judgment(finished=True, message=f"the cell timed out after {cell_timeout:.0f} s", victim=died)
    return Judgment(finished=False, victim=died)


def cell_verdict(cases: Iterable[CaseResult], problem: str) -> Verdict:
    """The cell's verdict: infra-error when what the target sent back cannot be trusted whole, else from its cases."""
    return Verdict.INFRA_ERROR if problem else verdict_for(list(cases))


# ------------------------------------------------------------------ a target that broke


@dataclasses.dataclass
class Attempts:
    """How often one target failed to start, and how often each of its cells was tried, in one run."""

    #: Failed starts so far: each is retried while :func:`retry_start` says so.
    start_failures: int = 0
    #: Tries per (target, suite), counting the one under way.
    cells: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    def failed_start(self) -> int:
        """Count one more failed start; return the count."""
        self.start_failures += 1
        return self.start_failures

    def next_try(self, key: tuple[str, str]) -> int:
        """Count one more try of cell ``key``; return which try this is (1 for the first)."""
        self.cells[key] = self.cells.get(key, 0) + 1
        return self.cells[key]


def retry_start(error: LeapfrogError, failures: int, retries: int) -> bool:
    """Whether to start the target again after its ``failures``-th failed start.

    Only a TargetError (the target broke) is retried, ``retries`` times; an
    ImageError or ConfigError says this target cannot run, and retrying it
    would fail the same way.
    """
    return isinstance(error, TargetError) and failures <= retries


def retry_cell(attempt: int, retries: int) -> bool:
    """Whether a cell whose ``attempt``-th try lost its target gets a fresh target and another try."""
    return attempt <= retries


def unstarted(cells: Iterable[tuple[str, str]], error: LeapfrogError, failures: int) -> list[CellResult]:
    """The (target, suite) cells of a target that could not start: infra-error, with the reason."""
    return [
        CellResult(
            target, suite, Verdict.INFRA_ERROR, message=f"the target could not start: {error}", attempts=failures
        )
        for target, suite in cells
    ]


def lost(target: str, suite: str, error: TargetError, attempts: int) -> CellResult:
    """A cell whose target broke under it on its last allowed try: infra-error."""
    return CellResult(target, suite, Verdict.INFRA_ERROR, message=str(error), attempts=attempts)
