"""The runner end to end on the native target: crash resume, timeouts, files on disk."""

from __future__ import annotations

import json
from pathlib import Path

from harness.config import TargetConfig, load_suite
from harness.model import Status, Verdict
from harness.plan import make_plan
from harness.report import render_all
from harness.runner import Runner, RunOptions

HOSTILE = """
import os, signal, sys, time

def test_first(metrics):
    metrics["x"] = 1

def test_segv():
    os.kill(os.getpid(), signal.SIGSEGV)

def test_exit():
    os._exit(7)

def test_hang():
    time.sleep(60)

def test_after_all():
    print("<script>alert(1)</script> ]]> \\x1b[31m")

def test_fails():
    assert "<b>" == "]]>"
"""


def test_crashes_resume_and_nothing_is_lost(tmp_path: Path, write_suite, native_config: TargetConfig) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite("hostile", {"test_h.py": HOSTILE}, toml="case_timeout = 2\ntimeout = 120\n")
    plan = make_plan([native_config], [load_suite(folder)])
    out = tmp_path / "out"
    run = Runner(plan, RunOptions(out=out)).execute()
    (cell,) = run.cells
    got = {c.name.split("::")[1]: c for c in cell.cases}
    assert {k: v.status for k, v in got.items()} == {
        "test_first": Status.PASSED,
        "test_segv": Status.CRASHED,
        "test_exit": Status.CRASHED,
        "test_hang": Status.TIMEOUT,
        "test_after_all": Status.PASSED,
        "test_fails": Status.FAILED,
    }
    assert "SIGSEGV" in got["test_segv"].message
    assert "exit code 7" in got["test_exit"].message
    assert cell.verdict is Verdict.PARTIAL
    saved = json.loads((out / "results.json").read_text())
    assert saved["cells"][0]["counts"]["crashed"] == 2
    assert saved["targets"][0]["facts"]["arch"]
    written = render_all(run, out)
    html = (out / "index.html").read_text()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert any(p.name == "junit-native.xml" for p in written)


def test_cell_timeout_kills_the_tree(tmp_path: Path, write_suite, native_config: TargetConfig) -> None:  # type: ignore[no-untyped-def]
    body = """
import subprocess, sys, time
def test_spawns_and_hangs():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)  # leapfrog-orphan-marker"])
    time.sleep(300)
"""
    folder = write_suite("hang", {"test_x.py": body}, toml="timeout = 3\ncase_timeout = 100\n")
    plan = make_plan([native_config], [load_suite(folder)])
    run = Runner(plan, RunOptions(out=tmp_path / "out")).execute()
    (cell,) = run.cells
    assert [c.status for c in cell.cases] == [Status.TIMEOUT]
    assert "timed out" in cell.message
    assert cell.wall < 30
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if b"leapfrog-orphan-marker" in (proc / "cmdline").read_bytes():
                left.append(proc.name)
        except OSError:
            continue
    assert left == []


def test_flaky_case_is_reported_as_flaky(tmp_path: Path, write_suite, native_config: TargetConfig) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "seen"
    body = f"""
from pathlib import Path
def test_flaky():
    marker = Path({str(marker)!r})
    first = not marker.exists()
    marker.write_text("x")
    assert not first, "fails the first time only"
def test_always_fails():
    assert False
def test_ok():
    pass
"""
    folder = write_suite("flaky", {"test_f.py": body})
    plan = make_plan([native_config], [load_suite(folder)])
    run = Runner(plan, RunOptions(out=tmp_path / "out", reruns=2)).execute()
    (cell,) = run.cells
    got = {c.name.split("::")[1]: c for c in cell.cases}
    assert got["test_flaky"].status is Status.PASSED
    assert got["test_flaky"].flaky
    assert "fails the first time only" in got["test_flaky"].message
    assert got["test_always_fails"].status is Status.FAILED
    assert not got["test_always_fails"].flaky
    assert not got["test_ok"].flaky
    assert cell.verdict is Verdict.PARTIAL


def test_host_driven_suite_gets_the_started_target(tmp_path: Path, write_suite, native_config: TargetConfig) -> None:  # type: ignore[no-untyped-def]
    body = """
import platform

def test_target_fixture(target, suite_settings, metrics):
    done = target.run(["uname", "-m"], timeout=30)
    assert done.ok
    assert done.stdout.strip() == platform.machine()
    assert suite_settings == {"qps": 5}
    metrics["target"] = target.name
"""
    folder = write_suite(
        "hostdriven", {"test_h.py": body}, toml='kind = "host-driven"\n[settings]\nqps = 5\n'
    )
    plan = make_plan([native_config], [load_suite(folder)])
    run = Runner(plan, RunOptions(out=tmp_path / "out")).execute()
    (cell,) = run.cells
    assert cell.verdict is Verdict.COMPATIBLE, cell.cases[0].message if cell.cases else cell.log
    assert cell.cases[0].metrics == {"target": "native"}
