"""Check the host for what each kind of target needs; say the exact fix for every gap.

The programs and their packages come from :data:`harness.hostreq.TABLE`, the
same table ``scripts/setup-host.sh`` installs from.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from harness.hostreq import TABLE

APT = "apt-get install -y"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    kinds: tuple[str, ...] = ()  # target kinds that need it
    package: str = ""  # the Debian package that fixes it, when one does


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
    for req in TABLE:
        path = req.found()
        checks.append(
            Check(req.name, bool(path), path or "not found", f"{APT} {req.package}", req.kinds, req.package)
        )
    ok, detail = _binfmt_ok("riscv64")
    fix = (
        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; "
        f"{APT} qemu-user-static binfmt-support && update-binfmts --enable qemu-riscv64"
    )
    checks.append(Check("binfmt riscv64", ok, detail, fix, ("chroot", "docker")))
    checks.extend(profile_checks())
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
    if not shutil.which("docker"):
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


def install_all(gaps: list[Check]) -> str:
    """One command that installs the packages of every gap a package fixes, or ""."""
    pkgs = sorted({c.package for c in gaps if c.package})
    return f"{APT} {' '.join(pkgs)}" if pkgs else ""


#: The ISA profile targets and the qemu-user they run on (targets/debian-trixie-riscv64-<profile>.toml).
PROFILES = {"rva20": "debian-trixie", "rva22": "debian-trixie", "rva23": "debian-trixie"}


def profile_checks(*, release: str | None = None) -> list[Check]:
    """One line per ISA profile: can this host run it, and if not, the exact step that makes it so.

    A profile runs on Debian 13's qemu-user from leapfrog's cache (fetched on
    first use, changing nothing on the host) in a private binfmt_misc, which
    needs Linux >= 6.7; the host's own qemu-user (QEMU 7.2 on Debian 12) knows
    no profile CPU models.
    """
    from harness import paths, qemu_user

    checks = []
    kernel = release or os.uname().release
    for name, source in PROFILES.items():
        target = f"debian-trixie-riscv64-{name}"
        if not qemu_user.kernel_ok(kernel):
            ok, detail = False, f"Linux {kernel} has no binfmt_misc per user namespace (needs 6.7)"
            fix = f"boot Linux 6.7 or later to run {target}; the host's qemu-user knows no {name} CPU model"
        elif (binary := qemu_user.cached(source)) is not None:
            version = qemu_user.meta(source).get("version_line") or str(binary)
            ok, detail, fix = True, f"{version}, cached in {paths.qemu_dir(source)}", ""
        else:
            ok = shutil.which("apt-get") is not None and Path(qemu_user.KEYRING).exists()
            detail = f"Debian 13's qemu-user is fetched into leapfrog's cache on first use of {target}"
            fix = f"{qemu_user.FETCH_HINT}   (nothing on the host changes)"
            if not ok:
                fix = f"{APT} apt debian-archive-keyring && {fix}"
        checks.append(Check(f"profile {name}", ok, detail, fix, ("profiles",), ""))
    return checks
