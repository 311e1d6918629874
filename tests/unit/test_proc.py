"""harness.targets._proc.run_process on real host processes: a prompt wait, timeouts, Ctrl-C, the fallback."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import FrameType

import pytest

from harness.targets import _proc
from harness.targets._proc import run_process


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0) until it is reaped: it counts as gone.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "Z"


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every time.sleep that subprocess's own timed wait makes (it polls with sleeps of up to 50 ms)."""
    made: list[float] = []
    real = time.sleep

    def sleep(seconds: float) -> None:
        made.append(seconds)
        real(seconds)

    monkeypatch.setattr(subprocess.time, "sleep", sleep)  # type: ignore[attr-defined]
    return made


@pytest.fixture
def no_pidfd(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_pid: int, _flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", refuse, raising=False)


def test_the_end_of_a_process_is_noticed_without_polling_sleeps(sleeps: list[float]) -> None:
    done = run_process(["sh", "-c", "sleep 0.3; echo out; echo err >&2; exit 3"], timeout=30)
    assert (done.exit_code, done.stdout, done.stderr, done.timed_out) == (3, "out\n", "err\n", False)
    assert sleeps == []  # subprocess's timed wait would have slept a dozen times
    assert 0.3 <= done.wall < 5


def test_a_timeout_kills_the_whole_group_and_calls_on_timeout(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    called: list[bool] = []
    start = time.monotonic()
    done = run_process(
        ["sh", "-c", f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait"],
        timeout=0.5,
        on_timeout=lambda: called.append(True),
    )
    assert time.monotonic() - start < 10
    assert done.timed_out
    assert done.exit_code is None
    assert called == [True]
    assert all(wait_gone(int(p)) for p in pids.read_text().split())


def test_the_fallback_without_pidfd_keeps_results_and_timeouts(no_pidfd: None, sleeps: list[float]) -> None:
    done = run_process(["sh", "-c", "sleep 0.1; echo fine"], timeout=30)
    assert (done.exit_code, done.stdout, done.timed_out) == (0, "fine\n", False)
    assert sleeps  # subprocess's own wait: proof that the fallback ran
    late = run_process(["sleep", "60"], timeout=0.3)
    assert late.timed_out
    assert late.exit_code is None


def test_a_signal_is_reported_as_such() -> None:
    done = run_process(["sh", "-c", "kill -TERM $$"], timeout=30)
    assert (done.exit_code, done.signal, done.timed_out) == (None, signal.SIGTERM, False)


def test_ctrl_c_while_waiting_kills_the_group_and_rises(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    called: list[bool] = []

    def interrupt(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_process(
                ["sh", "-c", f"sleep 60 & echo $! > {pids}; echo $$ >> {pids}; wait"],
                timeout=60,
                on_timeout=lambda: called.append(True),
            )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert called == [True]
    assert all(wait_gone(int(p)) for p in pids.read_text().split())


def test_wait_prompt_raises_timeout_expired_like_popen_wait() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            _proc.wait_prompt(proc, 0.2)
    finally:
        proc.kill()
        proc.wait()
