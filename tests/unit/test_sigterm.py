"""Every long command handles SIGTERM like Ctrl-C: its cleanup runs and it exits 130 (no root, no emulator)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The command's long step is replaced by one that sends SIGTERM to leapfrog and
# then waits; its ``finally`` (standing for unmount/stop/remove) must still run.
DRIVER = """
import os, signal, sys, time
from pathlib import Path

marker = Path(sys.argv[1])

def long_step(*_args, **_kwargs):
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
    finally:
        marker.write_text("cleaned up")

import harness.golden, harness.images, harness.images.fetch, harness.runner
harness.images.ensure_image = long_step
harness.images.fetch.fetch_verified = harness.images.fetch.fetch_image = long_step
harness.golden.regenerate = long_step
harness.runner.Runner.execute = lambda self: long_step()
from harness.cli import main
main(sys.argv[2:], prog_name="leapfrog")
"""


@pytest.mark.parametrize(
    "command",
    [
        ["images", "build", "-t", "debian-trixie-riscv64", "-s", "platform"],
        ["images", "fetch", "openeuler-24.03-riscv64-vm"],
        ["golden", "platform", "-t", "native"],
        ["run", "-t", "native", "-s", "platform", "--no-history", "--out", "{out}"],
    ],
    ids=["images-build", "images-fetch", "golden", "run"],
)
def test_sigterm_is_handled_like_ctrl_c(command: list[str], tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    argv = [a.replace("{out}", str(tmp_path / "report")) for a in command]
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(marker), "--root", str(ROOT), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 130, done.stderr[-2000:]
    assert marker.read_text() == "cleaned up"
    assert "interrupted" in done.stderr
