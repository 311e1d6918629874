"""The pass judgment as pure functions: pytest's exit and what the probe wrote -> the cell's course."""

from __future__ import annotations

import signal

import pytest

from harness.autotimeout import AutoTimeouts, CaseTimeout, Slowdown
from harness.errors import ConfigError, ImageError, TargetError
from harness.judge import (
    Attempts,
    Judgment,
    cell_verdict,
    judge_pass,
    lost,
    retry_cell,
    retry_start,
    signal_name,
    unstarted,
)
from harness.model import CaseResult, Status, Verdict
from harness.probe_lines import TIMEOUT_MARK, ProbeOutput
from harness.targets.base import Completed


def ran(exit_code: int | None, *, sig: int | None = None, stderr: str = "", timed_out: bool = False) -> Completed:
    return Completed(["python3", "-m", "pytest"], exit_code, sig, "", stderr, 1.0, timed_out=timed_out)


def probe(*, started: list[str] | None = None, ended: bool = False) -> ProbeOutput:
    return ProbeOutput(cases=[], started=started or [], collected=[], ended=ended)


def judge(proc: Completed, out: ProbeOutput, done: set[str] | None = None, **kw: object) -> Judgment:
    return judge_pass(proc, out, done or set(), cell_timeout=600, case_timeout=30, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("proc", "out"),
    [(ran(0), probe()), (ran(1), probe(ended=True))],
    ids=["all-passed", "some-failed-and-the-session-ended"],
)
def test_a_pass_that_ran_to_its_end_finishes_the_cell_without_a_message(proc: Completed, out: ProbeOutput) -> None:
    assert judge(proc, out) == Judgment(finished=True)


def test_no_tests_collected_is_said_only_when_nothing_was_recorded() -> None:
    assert judge(ran(5), probe()) == Judgment(finished=True, message="no tests were collected")
    # After a resume, exit 5 means the rest was empty: no message, the pytest-died branch speaks instead.
    assert judge(ran(5), probe(), {"t.py::a"}).message.startswith("pytest died before any case started (exit 5")


@pytest.mark.parametrize("code", [2, 3, 4])
def test_an_interrupted_internal_or_usage_error_with_no_case_running(code: int) -> None:
    got = judge(ran(code), probe(ended=True))
    assert got == Judgment(
        finished=True,
        message=f"pytest ended with exit code {code} (interrupted, internal or usage error)",
    )


def test_a_process_that_dies_before_any_case_started() -> None:
    got = judge(ran(None, sig=signal.SIGKILL), probe())
    assert got == Judgment(finished=True, message="pytest died before any case started (exit None, signal SIGKILL)")
    assert judge(ran(3), probe()).message == "pytest died before any case started (exit 3, signal none)"


def test_a_host_timeout_with_no_case_running_ends_the_cell() -> None:
    got = judge(ran(None, sig=signal.SIGKILL, timed_out=True), probe())
    assert got == Judgment(finished=True, message="the cell timed out after 600 s")


def test_a_case_that_kills_its_interpreter_is_crashed_and_the_suite_resumes() -> None:
    got = judge(ran(None, sig=signal.SIGSEGV, stderr="Fatal"), probe(started=["t.py::a", "t.py::b"]), {"t.py::a"})
    assert not got.finished
    assert got.message == ""
    assert got.victim is not None
    assert (got.victim.name, got.victim.status) == ("t.py::b", Status.CRASHED)
    assert got.victim.message == "the Python process died during this case (SIGSEGV)"
    assert got.victim.output == "Fatal"
    assert judge(ran(7), probe(started=["t.py::a"])).victim.message.endswith("(exit code 7)")  # type: ignore[union-attr]


def test_a_case_past_its_timeout_is_timeout_with_its_limit() -> None:
    stuck = ran(70, stderr=f"\n{TIMEOUT_MARK}: hard timeout\n")
    got = judge(stuck, probe(started=["t.py::slow"]))
    assert not got.finished
    assert got.victim is not None
    assert got.victim.status is Status.TIMEOUT
    assert got.victim.message == "exceeded the case timeout of 30 s (stuck in native code)"
    auto = AutoTimeouts(
        cases={"t.py::slow": CaseTimeout(12.5, 0.5, Slowdown(25.0, "default"))},
        fallback=CaseTimeout(300.0, None, Slowdown(25.0, "default")),
    )
    got = judge(stuck, probe(started=["t.py::slow"]), timeouts=auto)
    assert got.victim is not None
    assert "case timeout of 12.5 s" in got.victim.message


def test_a_case_killed_by_the_cell_timeout_is_timeout_and_ends_the_cell() -> None:
    got = judge(ran(None, sig=signal.SIGKILL, timed_out=True), probe(started=["t.py::hang"]))
    assert got.finished
    assert got.message == "the cell timed out after 600 s"
    assert got.victim is not None
    assert (got.victim.status, got.victim.message) == (Status.TIMEOUT, "killed by the host: the cell exceeded 600 s")


def test_the_victims_output_is_the_tail_of_stderr() -> None:
    got = judge(ran(None, sig=signal.SIGABRT, stderr="x" * 10_000 + "END"), probe(started=["t.py::a"]))
    assert got.victim is not None
    assert got.victim.output.endswith("END")
    assert len(got.victim.output) < 8100


def test_signal_names() -> None:
    assert (signal_name(None), signal_name(0), signal_name(11), signal_name(250)) == ("", "", "SIGSEGV", "signal 250")


def test_the_cell_verdict_is_infra_error_when_the_results_cannot_be_trusted() -> None:
    cases = [CaseResult("t.py::a", Status.PASSED, 0.1)]
    assert cell_verdict(cases, "") is Verdict.COMPATIBLE
    assert cell_verdict(cases, "results.jsonl is a FIFO") is Verdict.INFRA_ERROR


# ------------------------------------------------------------------ a target that broke


def test_attempts_count_failed_starts_apart_from_each_cells_tries() -> None:
    tries = Attempts()
    assert (tries.next_try(("rv", "a")), tries.next_try(("rv", "a")), tries.next_try(("rv", "b"))) == (1, 2, 1)
    assert (tries.failed_start(), tries.failed_start()) == (1, 2)
    assert tries.cells == {("rv", "a"): 2, ("rv", "b"): 1}  # a failed start is no try of any cell


def test_only_a_broken_target_is_started_again_and_only_retries_times() -> None:
    broken = TargetError("boot timed out")
    assert retry_start(broken, 1, 1)
    assert not retry_start(broken, 2, 1)
    assert not retry_start(ImageError("not cached"), 1, 5)
    assert not retry_start(ConfigError("bad key"), 1, 5)
    assert retry_cell(1, 1)
    assert not retry_cell(2, 1)
    assert not retry_cell(1, 0)


def test_what_could_not_run_is_infra_error_with_the_reason() -> None:
    cells = unstarted([("rv", "a"), ("rv", "b")], TargetError("target rv: boot timed out."), 2)
    assert [(c.suite, c.verdict, c.attempts) for c in cells] == [
        ("a", Verdict.INFRA_ERROR, 2),
        ("b", Verdict.INFRA_ERROR, 2),
    ]
    assert cells[0].message == "the target could not start: target rv: boot timed out."
    cell = lost("rv", "a", TargetError("target rv: the VM was killed."), 3)
    assert (cell.verdict, cell.attempts, cell.message) == (Verdict.INFRA_ERROR, 3, "target rv: the VM was killed.")
