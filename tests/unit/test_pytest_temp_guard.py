"""A killed test run's mounts are removed before pytest deletes its old temp folders."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="needs root to make a bind mount")
def test_a_leaked_bind_in_an_old_pytest_temp_folder_is_unmounted_before_cleanup(tmp_path: Path) -> None:
    # A private mount namespace and temp dir: nothing here can touch the host's mounts or folders.
    source = tmp_path / "precious"
    source.mkdir()
    (source / "device-node-stand-in").write_text("keep me")
    temp = tmp_path / "tmp"
    user_root = temp / "pytest-of-root"
    old = user_root / "pytest-1" / "test_killed0" / "root" / "dev"
    old.mkdir(parents=True)
    suite = tmp_path / "t"
    suite.mkdir()
    (suite / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (suite / "test_x.py").write_text("def test_x(tmp_path):\n    assert tmp_path.exists()\n")
    script = textwrap.dedent(f"""
        set -e
        mount --make-rprivate /
        mount --bind {source} {old}
        TMPDIR={temp} {sys.executable} -m pytest -q -p no:cacheprovider --rootdir {suite} {suite} >/dev/null
        grep -c " {old} " /proc/self/mountinfo || true
    """)
    # Several sessions in a row: pytest keeps 3 numbered folders and deletes older ones.
    again = f"TMPDIR={temp} {sys.executable} -m pytest -q -p no:cacheprovider --rootdir {suite} {suite} >/dev/null\n"
    script += again * 5
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[0] == "0"  # the bind was gone after the first session
    assert (source / "device-node-stand-in").read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() != 0 or sys.platform != "linux", reason="needs root to make a bind mount")
def test_a_live_sessions_mounts_are_left_alone(tmp_path: Path) -> None:
    """Two test sessions at once (make unit while make integration runs): the second one's start must not
    unmount the first one's live chroot (that ended the first one's commands with "No such file")."""
    source = tmp_path / "live-root"
    source.mkdir()
    (source / "python3").write_text("a live chroot's file")
    temp = tmp_path / "tmp"
    live = temp / "pytest-of-root" / "pytest-7"
    mountpoint = live / "test_running0" / "root"
    mountpoint.mkdir(parents=True)
    holder = subprocess.Popen(["sleep", "120"])  # stands in for the other, still running pytest session
    try:
        (live / ".lock").write_text(str(holder.pid))
        suite = tmp_path / "t"
        suite.mkdir()
        (suite / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
        (suite / "test_x.py").write_text("def test_x(tmp_path):\n    assert tmp_path.exists()\n")
        script = textwrap.dedent(f"""
            set -e
            mount --make-rprivate /
            mount --bind {source} {mountpoint}
            TMPDIR={temp} {sys.executable} -m pytest -q -p no:cacheprovider --rootdir {suite} {suite} >/dev/null
            cat {mountpoint}/python3
        """)
        done = subprocess.run(
            ["unshare", "--mount", "sh", "-c", script],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "a live chroot's file"  # still mounted after the other session started
