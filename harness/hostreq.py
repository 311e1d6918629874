"""What leapfrog runs on the host, and the Debian package that provides each: one table.

``scripts/setup-host.sh`` installs from this table and ``leapfrog doctor`` checks
it, so the two cannot disagree; ``tests/unit/test_hostreq.py`` fails when the
harness runs a program the table does not name.

Standard library only: setup-host.sh reads it with the system Python before
pip has installed anything::

    python3 -m harness.hostreq apt --profile chroot     # Debian packages, one a line
    python3 -m harness.hostreq hint mmdebstrap          # apt-get install mmdebstrap

Profiles: ``chroot`` is what chroot targets need (build a Debian image with
mmdebstrap, enter it through qemu-user); ``full`` adds docker, qemu-system and
what the project's own tests use (chromium).  A requirement's ``kinds`` are the
target kinds that cannot run without it; "tests" marks what only the test tier
needs, "deps" what ``leapfrog deps`` and ``run --project`` need, "profiles" what
chroot targets with ``qemu = "debian-trixie"`` (the ISA profile targets) need,
"openeuler" what building an openEuler image with dnf (``distro = "openeuler"``,
``source = "build"``) needs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from collections.abc import Iterable

PROFILES = ("chroot", "full")

#: Folders searched besides PATH: a non-root user's PATH often lacks the sbin ones.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One program (or file) leapfrog runs on the host."""

    program: str  # a command name looked up on PATH, or an absolute file path
    package: str  # the Debian package that provides it
    kinds: tuple[str, ...]  # target kinds that need it ("tests": only the test tier)
    profile: str  # the smallest setup profile that installs it
    why: str
    label: str = ""  # what doctor calls it, when the program is a file path

    @property
    def name(self) -> str:
        return self.label or self.program

    def found(self) -> str | None:
        """Where it is on this host, or None."""
        if self.program.startswith("/"):
            return self.program if os.path.exists(self.program) else None
        return shutil.which(self.program) or shutil.which(self.program, path=os.pathsep.join(SBIN))

    def hint(self) -> str:
        return f"apt-get install {self.package}"


_CHROOT = ("chroot", "docker", "qemu-vm")  # every kind that runs a Debian image leapfrog builds

#: Not in the table on purpose (setup installed them before, nothing runs them):
#: u-boot-qemu (qemu-vm boots Debian with QEMU's bundled OpenSBI, ``-bios default``;
#: openEuler's VM images bring their own U-Boot or UEFI firmware file) and
#: openssh-client (ssh and qemu-vm targets speak SSH through paramiko).
TABLE: tuple[Requirement, ...] = (
    Requirement("mmdebstrap", "mmdebstrap", _CHROOT, "chroot", "builds Debian images"),
    Requirement(
        "arch-test",
        "arch-test",
        _CHROOT,
        "chroot",
        "mmdebstrap needs it for a foreign architecture (only a Recommends of mmdebstrap)",
    ),
    Requirement("qemu-riscv64-static", "qemu-user-static", ("chroot", "docker"), "chroot", "runs riscv64 programs"),
    Requirement("update-binfmts", "binfmt-support", ("chroot", "docker"), "chroot", "registers qemu-user with binfmt"),
    Requirement("mount", "mount", ("chroot",), "chroot", "mounts /proc, /sys and /dev into a root"),
    Requirement("umount", "mount", ("chroot",), "chroot", "unmounts them"),
    Requirement("chroot", "coreutils", ("chroot",), "chroot", "enters a root"),
    Requirement(
        "unshare",
        "util-linux",
        ("chroot",),
        "chroot",
        "enters a root in a working folder natively (--root, --wd; without them chroot and the root's env -C)",
    ),
    Requirement("cp", "coreutils", ("chroot",), "chroot", "copies a cached image to layer packages onto it"),
    Requirement("env", "coreutils", ("chroot",), "chroot", "runs an image build's hooks with leapfrog importable"),
    Requirement("qemu-system-riscv64", "qemu-system-misc", ("qemu-vm",), "full", "boots riscv64 VMs"),
    Requirement(
        "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin",
        "opensbi",
        ("qemu-vm",),
        "full",
        "the firmware QEMU boots with -bios default",
        "opensbi firmware",
    ),
    Requirement("qemu-img", "qemu-utils", ("qemu-vm",), "full", "makes a VM's copy-on-write disk"),
    Requirement("mke2fs", "e2fsprogs", ("qemu-vm",), "full", "makes a VM's disk from a root filesystem"),
    Requirement("debugfs", "e2fsprogs", ("qemu-vm",), "full", "writes leapfrog's files into a VM's disk"),
    Requirement("docker", "docker.io", ("docker",), "full", "asks whether a Docker engine answers"),
    Requirement("dockerd", "docker.io", ("docker",), "full", "the Docker engine setup starts when none answers"),
    Requirement(
        "gpgv", "gpgv", ("deps",), "chroot", "checks the signature of Debian's InRelease (leapfrog deps, run --project)"
    ),
    Requirement(
        "/usr/share/keyrings/debian-archive-keyring.gpg",
        "debian-archive-keyring",
        ("deps",),
        "chroot",
        "the keys gpgv checks Debian's InRelease with",
        "Debian archive keyring",
    ),
    Requirement(
        "apt-get",
        "apt",
        ("profiles",),
        "chroot",
        "fetches Debian 13's qemu-user into leapfrog's cache (private apt configuration) for profile targets",
    ),
    Requirement("dpkg-deb", "dpkg", ("profiles",), "chroot", "unpacks that qemu-user package into leapfrog's cache"),
    Requirement(
        "dnf",
        "dnf",
        ("openeuler",),
        "chroot",
        "builds openEuler images (dnf --installroot --forcearch riscv64, image source build)",
    ),
    Requirement("rpm", "rpm", ("openeuler",), "chroot", "asks an openEuler image's rpm database what dnf installed"),
    Requirement("rpmbuild", "rpm", ("tests",), "full", "packs the stand-in RPMs of the openEuler dnf test"),
    Requirement("createrepo_c", "createrepo-c", ("tests",), "full", "indexes that stand-in repository"),
    Requirement("chromium", "chromium", ("tests",), "full", "the report's browser test"),
    Requirement("pgrep", "procps", ("tests",), "full", "the fault tests look for leftover QEMU processes"),
)


def for_profile(profile: str) -> list[Requirement]:
    """The requirements ``profile`` installs (``full`` includes ``chroot``)."""
    if profile not in PROFILES:
        raise ValueError(f'unknown setup profile "{profile}"; expected one of: {", ".join(PROFILES)}.')
    wanted = PROFILES[: PROFILES.index(profile) + 1]
    return [r for r in TABLE if r.profile in wanted]


def packages(profile: str) -> list[str]:
    """The Debian packages of ``profile``, sorted, each once."""
    return sorted({r.package for r in for_profile(profile)})


def lookup(program: str) -> Requirement | None:
    return next((r for r in TABLE if r.program == program), None)


def install_hint(programs: Iterable[str]) -> str:
    """``apt-get install P…`` for the packages of ``programs`` (each must be in the table)."""
    pkgs: list[str] = []
    for prog in programs:
        req = lookup(prog)
        if req is None:
            raise KeyError(f'"{prog}" is not in harness/hostreq.py TABLE; add it there.')
        if req.package not in pkgs:
            pkgs.append(req.package)
    return "apt-get install " + " ".join(pkgs)


def missing(profile: str) -> list[Requirement]:
    return [r for r in for_profile(profile) if r.found() is None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m harness.hostreq", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    apt = sub.add_parser("apt", help="print the Debian packages of a profile, one a line")
    apt.add_argument("--profile", choices=PROFILES, default="full")
    sub.add_parser("table", help="print the whole table")
    hint = sub.add_parser("hint", help="print the apt-get command that installs these programs")
    hint.add_argument("programs", nargs="+")
    args = parser.parse_args(argv)
    if args.cmd == "apt":
        print("\n".join(packages(args.profile)))
    elif args.cmd == "table":
        for r in TABLE:
            print(f"{r.program:58} {r.package:18} {r.profile:7} {','.join(r.kinds):22} {r.why}")
    else:
        try:
            print(install_hint(args.programs))
        except KeyError as e:
            print(e.args[0], file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
