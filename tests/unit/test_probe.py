"""The probe plugin, run for real by pytest in a subprocess on the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness.probe import PROBE_DIR
from harness.runner import parse_probe_lines

SUITE = """
import os, sys, time, pytest

def test_pass(metrics):
    metrics["answer"] = 42
    metrics["ratio"] = 0.5
    metrics["nan"] = float("nan")
    metrics["obj"] = object
    print("out <b>")

def test_fail():
    assert 1 + 1 == 3, "math is broken"

@pytest.mark.skip(reason="not here")
def test_skip(): pass

@pytest.mark.xfail(reason="known bug #1")
def test_xfail(): assert False

@pytest.mark.xfail(reason="fixed?")
def test_xpass(): pass

@pytest.fixture
def broken(): raise RuntimeError("setup broke")

def test_setup_error(broken): pass

@pytest.fixture
def bad_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_teardown_error(bad_teardown): pass

def test_slow(): time.sleep(5)

def test_big_output(): print("x" * 200_000)
"""


def run_probe(tmp_path: Path, body: str, **env: str) -> list[dict[str, object]]:
    (tmp_path / "test_s.py").write_text(body)
    results = tmp_path / "results.jsonl"
    full = {
        **os.environ,
        "PYTHONPATH": str(PROBE_DIR),
        "LEAPFROG_RESULTS": str(results),
        "LEAPFROG_OUTPUT_LIMIT": "1000",
        **env,
    }
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "leapfrog_probe", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path), str(tmp_path)],
        env=full, cwd=tmp_path, capture_output=True, check=False, timeout=60,
    )
    return [json.loads(line) for line in results.read_text().splitlines()]


def test_outcomes_metrics_and_bounds(tmp_path: Path) -> None:
    records = run_probe(tmp_path, SUITE, LEAPFROG_CASE_TIMEOUT="1")
    cases = {r["name"].split("::")[1]: r for r in records if r["event"] == "case"}  # type: ignore[union-attr]
    status = {k: v["status"] for k, v in cases.items()}
    assert status == {
        "test_pass": "passed", "test_fail": "failed", "test_skip": "skipped", "test_xfail": "xfailed",
        "test_xpass": "xpassed", "test_setup_error": "error", "test_teardown_error": "error",
        "test_slow": "timeout", "test_big_output": "passed",
    }
    assert cases["test_pass"]["metrics"] == {"answer": 42, "ratio": 0.5, "nan": "nan", "obj": "<class 'object'>"}
    assert "out <b>" in str(cases["test_pass"]["output"])
    assert str(cases["test_fail"]["message"]).startswith("AssertionError: math is broken")
    assert cases["test_skip"]["message"] == "Skipped: not here"
    assert cases["test_xfail"]["message"] == "known bug #1"
    assert "setup broke" in str(cases["test_setup_error"]["message"])
    assert "teardown broke" in str(cases["test_teardown_error"]["message"])
    assert float(cases["test_slow"]["duration"]) < 4  # type: ignore[arg-type]
    big = str(cases["test_big_output"]["output"])
    assert "truncated by leapfrog" in big
    assert len(big) < 2000
    (collected,) = [r["names"] for r in records if r["event"] == "collected"]
    assert len(collected) == 9  # type: ignore[arg-type]
    assert records[-1] == {"event": "end", "exitstatus": 1}


def test_done_file_deselects(tmp_path: Path) -> None:
    done = tmp_path / "done.txt"
    done.write_text("test_s.py::test_a\n")
    records = run_probe(tmp_path, "def test_a(): pass\ndef test_b(): pass\n", LEAPFROG_DONE=str(done))
    assert [r["name"] for r in records if r["event"] == "case"] == ["test_s.py::test_b"]


def test_crash_leaves_start_without_case(tmp_path: Path) -> None:
    records = run_probe(tmp_path, "import os\ndef test_a(): pass\ndef test_b(): os._exit(9)\ndef test_c(): pass\n")
    out = parse_probe_lines([json.dumps(r) for r in records])
    assert [c.name for c in out.cases] == ["test_s.py::test_a"]
    assert out.started == ["test_s.py::test_b"]
    assert not out.ended


def test_collection_error_is_reported(tmp_path: Path) -> None:
    records = run_probe(tmp_path, "import no_such_module_here\ndef test_a(): pass\n")
    cases = [r for r in records if r["event"] == "case"]
    assert len(cases) == 1
    assert cases[0]["status"] == "error"
    assert "no_such_module_here" in str(cases[0]["message"])


def test_parse_is_defensive() -> None:
    lines = [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"event": "case", "name": "a", "status": "bogus", "duration": "x", "metrics": {"k": [1]}}),
        json.dumps({"event": "case", "name": "b", "status": "passed", "message": "m" * 100_000}),
        "x" * (2 << 20),
    ]
    out = parse_probe_lines(lines)
    a, b = out.cases
    assert a.status.value == "error"
    assert a.duration == 0.0
    assert a.metrics == {"k": "[1]"}
    assert len(b.message) < 20_000
    assert "truncated" in b.message


def test_hard_timeout_ends_a_case_stuck_in_native_code(tmp_path: Path) -> None:
    body = """
import signal, time
def test_stuck():
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])  # the soft timeout cannot fire
    time.sleep(60)
def test_after():
    pass
"""
    start = time.monotonic()
    records = run_probe(tmp_path, body, LEAPFROG_CASE_TIMEOUT="1", LEAPFROG_HARD_GRACE="1")
    assert time.monotonic() - start < 30
    out = parse_probe_lines([json.dumps(r) for r in records])
    assert out.cases == []
    assert out.started == ["test_s.py::test_stuck"]  # the runner marks it timeout and resumes


def test_watchdog_thread_never_takes_a_signal_a_case_waits_for(tmp_path: Path) -> None:
    """A case blocks SIGUSR2 and sigwaits for it: the probe's own thread must not catch it."""
    body = """
import os, signal, threading
def test_sigwait():
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        assert signal.sigwait({signal.SIGUSR2}) == signal.SIGUSR2
        os.kill(os.getpid(), signal.SIGUSR2)  # blocked here and not waited for: stays pending
        assert signal.SIGUSR2 in signal.sigpending()
        assert signal.sigtimedwait({signal.SIGUSR2}, 5).si_signo == signal.SIGUSR2
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
"""
    records = run_probe(tmp_path, body, LEAPFROG_CASE_TIMEOUT="30")
    out = parse_probe_lines([json.dumps(r) for r in records])
    assert [(c.name, c.status.value) for c in out.cases] == [("test_s.py::test_sigwait", "passed")]
