"""Runs in the openEuler-style chroot dnf built from the stand-in repository (see openeuler_standin.py)."""

import platform
import subprocess
import sys


def test_python_runs_on_riscv64() -> None:
    assert platform.machine() == "riscv64"
    assert sys.version_info >= (3, 9)


def test_os_release_is_the_openeuler_style_stand_in() -> None:
    with open("/etc/os-release") as f:
        text = f.read()
    assert 'ID="openEuler"' in text
    assert "stand-in (Debian riscv64 files repackaged, not openEuler)" in text


def test_a_child_process_runs_too() -> None:
    argv = [sys.executable, "-c", "import platform; print(platform.machine())"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "riscv64"
