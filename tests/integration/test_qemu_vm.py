"""qemu-vm and ssh backends against a real riscv64 Debian trixie VM.

One VM boots per module (about a minute or two under TCG); every test here
shares it, and the test that kills QEMU runs last.  Set LEAPFROG_TEST_ROOTFS
to a ready root filesystem folder to skip the image build while developing.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import ImageSpec, TargetConfig
from harness.errors import TargetError
from harness.images import CachedImage
from harness.sshkeys import generate_ed25519
from harness.targets.qemu_vm import QemuVmTarget
from harness.targets.ssh import SshTarget

pytestmark = [pytest.mark.integration, pytest.mark.qemu_vm]


def vm_config(tmp: Path) -> TargetConfig:
    return TargetConfig(
        name="debian-trixie-riscv64-vm",
        kind="qemu-vm",
        file=tmp / "debian-trixie-riscv64-vm.toml",
        description="test VM",
        arch="riscv64",
        python="python3",
        env={"LEAPFROG_FROM_TARGET": "yes"},
        image=ImageSpec(),
        options=QemuVmTarget.Options(cpus=2, memory="2G", boot_timeout=600.0),
    )


@pytest.fixture(scope="module")
def rootfs(request: pytest.FixtureRequest) -> Path:
    for tool in ("qemu-system-riscv64", "qemu-img"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install qemu-system-misc opensbi qemu-utils)")
    if not any(shutil.which(t) or Path(d, t).exists() for t in ("mke2fs",) for d in ("/usr/sbin", "/sbin")):
        pytest.skip("mke2fs is not installed (apt-get install e2fsprogs)")
    ready = os.environ.get("LEAPFROG_TEST_ROOTFS")
    if ready:
        return Path(ready)
    image: CachedImage = request.getfixturevalue("debian_image")
    return image.rootfs


@pytest.fixture(scope="module")
def vm(rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QemuVmTarget]:
    tmp = tmp_path_factory.mktemp("vm")
    target = QemuVmTarget(vm_config(tmp), progress=lambda m: print(m, flush=True))
    target.rootfs = rootfs
    target.artifacts_dir = tmp / "artifacts"
    target.start()
    print(f"booted to SSH in {target.boot_seconds:.1f} s", flush=True)
    yield target
    target.stop()


def ssh_options(vm: QemuVmTarget, known_hosts: Path, **kw: object) -> SshTarget.Options:
    assert vm.ssh_port is not None
    assert vm.disk is not None
    return SshTarget.Options(
        host="127.0.0.1",
        port=vm.ssh_port,
        user="root",
        key_file=str(vm.disk.client_key),
        known_hosts=str(known_hosts),
        **kw,  # type: ignore[arg-type]
    )


def ssh_config(tmp: Path, options: SshTarget.Options) -> TargetConfig:
    return TargetConfig(
        name="board",
        kind="ssh",
        file=tmp / "board.toml",
        description="",
        arch="riscv64",
        python="python3",
        env={},
        image=None,
        options=options,
    )


# --------------------------------------------------------------------------- qemu-vm


def test_vm_boots_and_runs_a_command(vm: QemuVmTarget) -> None:
    done = vm.run(["uname", "-m"], timeout=60)
    assert (done.exit_code, done.stdout, done.timed_out) == (0, "riscv64\n", False)
    assert vm.boot_seconds is not None
    assert 0 < vm.boot_seconds < vm.options.boot_timeout
    assert vm.console_log is not None
    assert "Linux version" in vm.console_log.read_text(errors="replace")


def test_vm_start_is_idempotent(vm: QemuVmTarget) -> None:
    port, pid = vm.ssh_port, vm.qemu_pid
    vm.start()
    assert (vm.ssh_port, vm.qemu_pid) == (port, pid)


def test_vm_facts_are_measured_inside_the_guest(vm: QemuVmTarget) -> None:
    facts = vm.facts()
    cpuinfo = vm.run(["cat", "/proc/cpuinfo"], timeout=60).stdout
    isa_lines = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("isa")]
    assert facts.arch == "riscv64"
    # The ISA is the kernel's riscv_hwprobe answer (what user space may use); the whole
    # "isa" line of /proc/cpuinfo (supervisor extensions too) is kept beside it.
    assert facts.extra["isa_source"] == "hwprobe"
    assert facts.extra["isa_cpuinfo"] == isa_lines[0]
    base, *multi = isa_lines[0].split("_")
    assert set(facts.extensions) <= set(base[4:]) | set(multi)
    assert facts.isa.startswith("rv64ima")
    assert {"i", "m", "a", "f", "d", "c"} <= set(facts.extensions)
    assert facts.emulation == "qemu-system"
    assert facts.cpu_model == "rv64"
    assert facts.os_id == "debian"
    assert facts.kernel.endswith("riscv64")
    assert facts.python.startswith("3.")


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"hello\n",
        "sub/bin.dat": bytes(range(256)) * 300,
        "sub/deeper/ünï.txt": "ünï\n".encode(),
        "sub/deeper/run.sh": b"#!/bin/sh\necho ran\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "sub/deeper/run.sh").chmod(0o755)
    return files


# --------------------------------------------------------------------------- ssh against the same VM


@pytest.mark.ssh
def test_ssh_target_with_strict_host_key(vm: QemuVmTarget, tmp_path: Path) -> None:
    assert vm.disk is not None
    assert vm.ssh_port is not None
    known = tmp_path / "known_hosts"
    known.write_text(vm.disk.known_hosts_line("127.0.0.1", vm.ssh_port))
    with SshTarget(ssh_config(tmp_path, ssh_options(vm, known))) as board:
        assert board.run(["uname", "-m"], timeout=60).stdout == "riscv64\n"
        facts = board.facts()
        assert facts.arch == "riscv64"
        assert facts.emulation == "board"
        src = tmp_path / "src"
        files = make_tree(src)
        board.put(src, "/tmp/leapfrog-ssh-rt")
        board.get("/tmp/leapfrog-ssh-rt", tmp_path / "back")
        assert {
            str(p.relative_to(tmp_path / "back")): p.read_bytes() for p in (tmp_path / "back").rglob("*") if p.is_file()
        } == files
    assert known.read_text() == vm.disk.known_hosts_line("127.0.0.1", vm.ssh_port)


@pytest.mark.ssh
def test_ssh_target_refuses_a_changed_host_key(vm: QemuVmTarget, tmp_path: Path) -> None:
    assert vm.ssh_port is not None
    _, wrong_pub = generate_ed25519()
    kind, b64 = wrong_pub.split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{vm.ssh_port} {kind} {b64}\n")
    board = SshTarget(ssh_config(tmp_path, ssh_options(vm, known, accept_new_host_key=True)))
    with pytest.raises(TargetError, match="CHANGED"):
        board.start()
    board.stop()
    assert known.read_text() == f"[127.0.0.1]:{vm.ssh_port} {kind} {b64}\n"


@pytest.mark.ssh
def test_ssh_target_accepts_and_saves_a_new_host_key_only_when_asked(vm: QemuVmTarget, tmp_path: Path) -> None:
    assert vm.disk is not None
    assert vm.ssh_port is not None
    known = tmp_path / "known_hosts"
    with pytest.raises(TargetError, match="unknown"):
        SshTarget(ssh_config(tmp_path, ssh_options(vm, known))).start()
    assert not known.exists()
    with SshTarget(ssh_config(tmp_path, ssh_options(vm, known, accept_new_host_key=True))) as board:
        assert board.run(["true"], timeout=60).ok
    assert known.read_text() == vm.disk.known_hosts_line("127.0.0.1", vm.ssh_port)


@pytest.mark.ssh
def test_ssh_target_stop_kills_what_its_commands_left_running_and_nothing_else(
    vm: QemuVmTarget, tmp_path: Path
) -> None:
    """Against a real sshd and a real riscv64 python3: a plain background child and a setsid one are ended."""
    assert vm.disk is not None
    assert vm.ssh_port is not None
    known = tmp_path / "known_hosts"
    known.write_text(vm.disk.known_hosts_line("127.0.0.1", vm.ssh_port))
    # Not the board's: started by the VM target's own connection, it carries no tag of the board.
    other = vm.run(["sh", "-c", "sleep 302 >/dev/null 2>&1 & echo $!"], timeout=60)
    assert other.ok, other.stderr
    unrelated = int(other.stdout)
    try:
        board = SshTarget(ssh_config(tmp_path, ssh_options(vm, known)))
        board.start()
        left = board.run(
            ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!; setsid sleep 301 >/dev/null 2>&1 & echo $!"],
            timeout=60,
        )
        assert left.ok, left.stderr
        pids = [int(x) for x in left.stdout.split()]
        alive = vm.run(["sh", "-c", " && ".join(f"kill -0 {p}" for p in [*pids, unrelated])], timeout=60)
        assert alive.ok, "the sleeps should run until the board's stop()"
        board.stop()
        for pid in pids:
            assert vm.run(["kill", "-0", str(pid)], timeout=60).exit_code != 0, f"{pid} survived the stop()"
        assert vm.run(["kill", "-0", str(unrelated)], timeout=60).ok, "a process the board did not start was killed"
    finally:
        vm.run(["kill", "-9", str(unrelated)], timeout=60)


# --------------------------------------------------------------------------- last: QEMU dies


def test_zz_qemu_dying_mid_run_is_a_target_error_and_stop_cleans_up(vm: QemuVmTarget) -> None:
    assert vm.qemu_pid is not None
    workdir = vm.workdir
    assert workdir is not None
    assert (workdir / "overlay.qcow2").exists()
    errors: list[BaseException] = []

    def long_run() -> None:
        try:
            vm.run(["sleep", "120"], timeout=300)
        except BaseException as e:
            errors.append(e)

    runner = threading.Thread(target=long_run)
    runner.start()
    time.sleep(3)
    os.kill(vm.qemu_pid, signal.SIGKILL)
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], TargetError)
    assert "exited" in str(errors[0])
    with pytest.raises(TargetError, match=r"exited|not running"):
        vm.run(["true"], timeout=30)
    vm.stop()
    vm.stop()
    assert not workdir.exists()
    assert vm.console_log is not None
    assert vm.console_log.exists()
