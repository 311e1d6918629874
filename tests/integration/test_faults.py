"""Faults on a real riscv64 chroot target: crashes, hangs, floods, injection, Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.images import CachedImage
from harness.targets.chroot import mounts_under, pids_rooted_at
from tests.integration.conftest import ROOT, cache_env

pytestmark = [pytest.mark.integration, pytest.mark.chroot]
SUITES = Path(__file__).parent / "suites"


def leapfrog_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "--root", str(ROOT), "--suites-dir", str(SUITES), *args]


def _ctrl_c_as_at_a_terminal() -> None:
    """In the child: SIGINT back to its default, as at a terminal.

    A shell that starts a job in the background (``cmd &``, nohup) makes it
    ignore SIGINT, the children inherit that, and Python then never raises
    KeyboardInterrupt: the test would send Ctrl-C to a process deaf to it.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def no_leftovers(cache: Path) -> None:
    """This test's own run left nothing: its private runs/ holds no mount, process or folder."""
    runs = cache / "runs"
    for d in runs.iterdir():
        assert not mounts_under(d), f"mounts left under {d}"
        root = d / "root"
        assert not pids_rooted_at(root), f"processes left in {root}"
    assert mounts_under(cache.resolve()) == []
    assert list(runs.iterdir()) == []


def test_hostile_suite(private_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    done = subprocess.run(
        leapfrog_argv("run", "-t", "debian-trixie-riscv64", "-s", "hostile", "--out", str(out), "--no-history"),
        env=cache_env(private_cache),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    data = json.loads((out / "results.json").read_text())
    (cell,) = data["cells"]
    status = {c["name"].split("::")[1]: c["status"] for c in cell["cases"]}
    assert status["test_before"] == "passed"
    assert status["test_segfault"] == "crashed"
    assert status["test_illegal_instruction"] == "crashed"
    assert status["test_os_exit"] == "crashed"
    assert status["test_hang"] == "timeout"
    assert status["test_flood"] == "passed"
    assert status["test_invalid_utf8"] == "failed"
    assert status["test_after"] == "passed"
    injected = [k for k in status if k.startswith("test_injection_in_names")]
    assert len(injected) == 3
    assert all(status[k] == "failed" for k in injected)
    messages = {c["name"].split("::")[1]: c["message"] for c in cell["cases"]}
    assert "SIGSEGV" in messages["test_segfault"]
    assert "SIGILL" in messages["test_illegal_instruction"]
    flood = next(c for c in cell["cases"] if c["name"].endswith("test_flood"))
    assert len(flood["output"]) < 200_000
    assert "truncated" in flood["output"]
    # Lines the suite forged into its results file: numbers no float holds are dropped and named.
    assert status["test_forged_results_lines"] == "passed"
    forged = {c["name"].split("::")[1]: c for c in cell["cases"] if "::forged_" in c["name"]}
    assert forged["forged_big_int_duration"]["duration"] == 0.0
    assert forged["forged_inf_duration"]["duration"] == 0.0
    assert forged["forged_metrics"]["metrics"] == {"ok_ms": 1.5}
    assert "an integer of 401 digits" in cell["message"]
    json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"results.json holds {c}"))
    facts = data["targets"][0]["facts"]  # the facts of the first pass are kept; the forged line parsed, not used
    assert facts["isa"].startswith("rv64")
    assert facts["extra"]["qemu"]
    html = (out / "index.html").read_text()
    assert "<script>window.__pwned" not in html
    ET.parse(out / "junit-debian-trixie-riscv64.xml")  # parses despite ]]> and control characters
    no_leftovers(private_cache)


def test_results_file_replaced_by_a_fifo_is_refused(private_cache: Path, tmp_path: Path) -> None:
    """The chroot's results file swapped for a FIFO: read from the host without blocking, refused, and the
    cell (only) is infra-error; the report is complete."""
    out = tmp_path / "r"
    done = subprocess.run(
        leapfrog_argv("run", "-t", "debian-trixie-riscv64", "-s", "replaced", "--out", str(out), "--no-history"),
        env=cache_env(private_cache),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    assert cell["verdict"] == "infra-error"
    assert "is a FIFO (named pipe), not a regular file" in cell["message"]
    assert cell["wall"] < 120
    ET.parse(out / "junit-debian-trixie-riscv64.xml")
    assert (out / "index.html").exists()
    no_leftovers(private_cache)


def test_interrupt_keeps_results_and_resume_finishes(private_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = subprocess.Popen(
        leapfrog_argv(
            "run", "-t", "native,debian-trixie-riscv64", "-s", "quick,slow", "--out", str(out), "--no-history"
        ),
        env=cache_env(private_cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_at_a_terminal,
    )
    deadline = time.monotonic() + 600
    cases = out / "cases.jsonl"
    # Interrupt once the riscv64 target is inside the slow suite.
    while time.monotonic() < deadline:
        if cases.exists() and '"debian-trixie-riscv64", "suite": "slow"' in cases.read_text():
            break
        if proc.poll() is not None:  # ended on its own: say why now, not after the deadline
            _out, err = proc.communicate()
            pytest.fail(f"leapfrog ended (exit {proc.returncode}) before the slow suite ran on riscv64: {err[-2000:]}")
        time.sleep(0.5)
    else:
        proc.kill()
        _out, err = proc.communicate()  # closes the pipes too
        pytest.fail(f"the slow suite never started on riscv64: {err[-2000:]}")
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "resume with" in stderr
    data = json.loads((out / "results.json").read_text())
    verdicts = {(c["target"], c["suite"]): c["verdict"] for c in data["cells"]}
    assert verdicts[("native", "quick")] == "compatible"
    assert verdicts[("debian-trixie-riscv64", "slow")] == "not-run"
    assert (out / "index.html").exists()
    streamed = [json.loads(line) for line in cases.read_text().splitlines()]
    assert any(r["target"] == "debian-trixie-riscv64" and r["suite"] == "slow" for r in streamed)
    no_leftovers(private_cache)

    done = subprocess.run(
        leapfrog_argv("run", "--resume", str(out), "--no-history"),
        env=cache_env(private_cache),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads((out / "results.json").read_text())
    assert {c["verdict"] for c in data["cells"]} == {"compatible"}
    assert len(data["cells"]) == 4
    no_leftovers(private_cache)


def test_sigterm_is_handled_like_ctrl_c(private_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = subprocess.Popen(
        leapfrog_argv("run", "-t", "debian-trixie-riscv64", "-s", "slow", "--out", str(out), "--no-history"),
        env=cache_env(private_cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cases = out / "cases.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (cases.exists() and cases.read_text()):
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert (out / "index.html").exists()
    no_leftovers(private_cache)


def _watch_and_kill(proc: subprocess.Popen[str], needle: str, kill: list[str], delay: float) -> str:
    """Read leapfrog's progress until ``needle``, wait ``delay``, run ``kill``; return all stderr."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if needle in line:
            time.sleep(delay)
            subprocess.run(kill, check=False, capture_output=True)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=900)
    proc.stderr.close()
    return "".join(seen) + rest


@pytest.mark.docker
def test_container_removed_mid_suite_is_infra_error(debian_image: CachedImage, tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = subprocess.Popen(
        leapfrog_argv(
            "run",
            "-t",
            "debian-trixie-riscv64-docker",
            "-s",
            "slow,quick",
            "--retries",
            "0",
            "--out",
            str(out),
            "--no-history",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill = ["sh", "-c", "docker ps -q --filter label=leapfrog | xargs -r docker rm -f"]
    log = _watch_and_kill(proc, "debian-trixie-riscv64-docker / slow: running", kill, 4)
    assert proc.returncode == 2, log[-3000:]  # infrastructure, not a failed test
    data = json.loads((out / "results.json").read_text())
    verdicts = {c["suite"]: c["verdict"] for c in data["cells"]}
    assert verdicts == {"slow": "infra-error", "quick": "compatible"}, log[-3000:]
    left = subprocess.run(["docker", "ps", "-aq", "--filter", "label=leapfrog"], capture_output=True, text=True)
    assert left.stdout.strip() == ""


@pytest.mark.qemu_vm
def test_vm_killed_mid_suite_is_retried(debian_image: CachedImage, tmp_path: Path) -> None:
    out = tmp_path / "r"
    proc = subprocess.Popen(
        leapfrog_argv(
            "run",
            "-t",
            "debian-trixie-riscv64-vm",
            "-s",
            "slow,quick",
            "--retries",
            "1",
            "--out",
            str(out),
            "--no-history",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill = ["pkill", "-KILL", "-f", "qemu-system-riscv64.*leapfrog"]
    log = _watch_and_kill(proc, "debian-trixie-riscv64-vm / slow: running", kill, 4)
    assert proc.returncode == 0, log[-3000:]
    data = json.loads((out / "results.json").read_text())
    cells = {c["suite"]: c for c in data["cells"]}
    assert cells["slow"]["verdict"] == "compatible"
    assert cells["slow"]["attempts"] == 2  # the first attempt lost its VM; the retry booted a fresh one
    assert cells["quick"]["verdict"] == "compatible"
    left = subprocess.run(["pgrep", "-f", "qemu-system-riscv64.*leapfrog"], capture_output=True, text=True)
    assert left.stdout.strip() == ""
