"""Check the host for what each kind of target needs; say the exact fix for every gap."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

APT = "apt-get install -y"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    kinds: tuple[str, ...] = ()  # target kinds that need it


def _which(cmd: str) -> str | None:
    return shutil.which(cmd)


def _binfmt_ok(arch: str) -> tuple[bool, str]:
    entry = Path(f"/proc/sys/fs/binfmt_misc/qemu-{arch}")
    if not Path("/proc/sys/fs/binfmt_misc/status").exists():
        return False, "binfmt_misc is not mounted"
    if not entry.exists():
        return False, f"no binfmt entry for {arch}"
    text = entry.read_text()
    if not text.startswith("enabled"):
        return False, f"the binfmt entry for {arch} is disabled"
    flags = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("flags")), "")
    if "F" not in flags:
        return False, f"binfmt entry for {arch} lacks the F (fix-binary) flag needed inside a chroot"
    return True, f"enabled, flags {flags}"


def run_checks() -> list[Check]:
    checks = []
    root = os.geteuid() == 0
    checks.append(
        Check(
            "root",
            root,
            "running as root" if root else "not root",
            "run leapfrog as root or with sudo (chroot, mount, mmdebstrap need it)",
            ("chroot", "qemu-vm"),
        )
    )
    for cmd, pkg, kinds in (
        ("qemu-riscv64-static", "qemu-user-static", ("chroot", "docker")),
        ("mmdebstrap", "mmdebstrap", ("chroot", "docker", "qemu-vm")),
        ("qemu-system-riscv64", "qemu-system-misc", ("qemu-vm",)),
        ("qemu-img", "qemu-utils", ("qemu-vm",)),
        ("mke2fs", "e2fsprogs", ("qemu-vm",)),
    ):
        path = _which(cmd)
        checks.append(Check(cmd, bool(path), path or "not found", f"{APT} {pkg}", kinds))
    ok, detail = _binfmt_ok("riscv64")
    fix = (
        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; "
        f"{APT} qemu-user-static binfmt-support && update-binfmts --enable qemu-riscv64"
    )
    checks.append(Check("binfmt riscv64", ok, detail, fix, ("chroot", "docker")))
    opensbi = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin").exists()
    checks.append(
        Check("opensbi firmware", opensbi, "found" if opensbi else "not found", f"{APT} opensbi", ("qemu-vm",))
    )
    docker_ok, docker_detail = _docker()
    checks.append(
        Check(
            "docker engine",
            docker_ok,
            docker_detail,
            f"{APT} docker.io && (dockerd >/var/log/dockerd.log 2>&1 &)",
            ("docker",),
        )
    )
    return checks


def _docker() -> tuple[bool, str]:
    if not _which("docker"):
        return False, "docker CLI not found"
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, "docker engine did not answer in 10 s"
    if done.returncode != 0:
        return False, "no docker engine answers (" + (done.stderr.strip().splitlines() or ["?"])[-1][:120] + ")"
    return True, f"engine {done.stdout.strip()}"


def blocking(checks: list[Check], kinds: set[str]) -> list[Check]:
    """Failed checks that stop targets of ``kinds`` from running."""
    return [c for c in checks if not c.ok and set(c.kinds) & kinds]
