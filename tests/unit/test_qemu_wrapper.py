"""The CPU-model wrapper (harness.qemu_wrapper) run for real on this host, with a script standing in for qemu.

The stand-in prints the command line and environment it was given, so each
test sees exactly what qemu would: ``-cpu`` first, argv[0] kept with ``-0``,
the program's own arguments in order, the environment passed on untouched.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from harness import qemu_wrapper
from harness.errors import TargetError

on_x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason="the wrapper is x86-64 machine code")


def stand_in(tmp_path: Path) -> Path:
    path = tmp_path / "qemu-riscv64"
    path.write_text(
        f"#!{sys.executable}\nimport json, os, sys\nprint(json.dumps({{'argv': sys.argv, 'env': dict(os.environ)}}))\n"
    )
    path.chmod(0o755)
    return path


def run(wrapper: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(wrapper), *args], env=env, capture_output=True, text=True, timeout=30, check=False)


@on_x86_64
def test_the_wrapper_runs_qemu_with_the_cpu_model_whatever_the_environment(tmp_path: Path) -> None:
    qemu = stand_in(tmp_path)
    wrapper = qemu_wrapper.write(tmp_path / "w", str(qemu), "rv64i,m=true,a=true")
    # As binfmt_misc starts it with flag P: WRAPPER FILENAME ARGV0 ARGS...
    done = run(wrapper, "/usr/bin/python3", "python3", "-c", "print('a b')", env={})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["argv"] == [str(qemu), "-cpu", "rv64i,m=true,a=true", "-0", "python3", "/usr/bin/python3", "-c",
                            "print('a b')"]  # fmt: skip
    assert "QEMU_CPU" not in seen["env"]  # the model came from the command line, not the (empty) environment

    env = {"QEMU_CPU": "max", "KEEP": "1"}
    seen = json.loads(run(wrapper, "/bin/prog", "prog", env=env).stdout)
    assert seen["argv"] == [str(qemu), "-cpu", "rv64i,m=true,a=true", "-0", "prog", "/bin/prog"]
    assert seen["env"]["KEEP"] == "1"  # passed on untouched (qemu's -cpu wins over QEMU_CPU)


@on_x86_64
def test_a_wrapper_without_a_cpu_model_passes_only_argv0(tmp_path: Path) -> None:
    qemu = stand_in(tmp_path)
    wrapper = qemu_wrapper.write(tmp_path / "w", str(qemu), "")
    seen = json.loads(run(wrapper, "/bin/prog", "argv0", "x", env={}).stdout)
    assert seen["argv"] == [str(qemu), "-0", "argv0", "/bin/prog", "x"]


@on_x86_64
def test_a_wrapper_that_cannot_run_qemu_says_so_and_exits_127(tmp_path: Path) -> None:
    wrapper = qemu_wrapper.write(tmp_path / "w", str(tmp_path / "gone"), "rva23u64")
    done = run(wrapper, "/bin/prog", "prog", env={})
    assert done.returncode == 127
    assert done.stderr == f"leapfrog: the qemu-user wrapper could not run {tmp_path / 'gone'}\n"
    done = run(wrapper, "/bin/prog", env={})  # started without binfmt_misc's P arguments
    assert done.returncode == 127


def test_one_wrapper_per_model_made_once(tmp_path: Path) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the wrapper is x86-64 machine code")
    a = qemu_wrapper.write(tmp_path, "/q", "rva22u64")
    b = qemu_wrapper.write(tmp_path, "/q", "rva23u64")
    assert a != b
    assert qemu_wrapper.write(tmp_path, "/q", "rva22u64") == a
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([a.name, b.name])  # no temporary file left
    assert a.stat().st_mode & 0o777 == 0o755


def test_another_host_architecture_is_refused_not_run_on_another_cpu() -> None:
    with pytest.raises(TargetError, match=r"x86_64 hosts only, and this host is aarch64"):
        qemu_wrapper.program("/q", "rva23u64", machine="aarch64")
