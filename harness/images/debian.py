"""Build a Debian root filesystem with mmdebstrap (through qemu-user/binfmt for riscv64)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import ImageError

#: Always in a Debian image: what the probe and pytest need.
BASE_PACKAGES = ["python3", "python3-pytest", "ca-certificates"]

_MISSING = [
    re.compile(r"Unable to locate package (\S+)"),
    re.compile(r"Package '?([^' ]+)'? has no installation candidate"),
    re.compile(r"E: Package '([^']+)'"),
]


def mmdebstrap_argv(release: str, arch: str, mirror: str, packages: list[str], dest: Path) -> list[str]:
    return [
        "mmdebstrap",
        f"--arch={arch}",
        "--variant=minbase",
        '--aptopt=APT::Install-Recommends "false"',
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        f"--include={','.join(sorted(set(packages)))}",
        release,
        str(dest),
        mirror,
    ]


def build_rootfs(
    release: str,
    arch: str,
    mirror: str,
    packages: list[str],
    dest: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Build into ``dest`` (which must not exist).  On failure ``dest`` is removed."""
    if shutil.which("mmdebstrap") is None:
        raise ImageError("mmdebstrap is not installed; run: apt-get install mmdebstrap qemu-user-static binfmt-support")
    if os.geteuid() != 0:
        raise ImageError("building a Debian image needs root (mmdebstrap, chroot); run leapfrog as root or with sudo.")
    argv = mmdebstrap_argv(release, arch, mirror, packages, dest)
    tail: list[str] = []
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    assert proc.stdout is not None
    try:
        for raw in proc.stdout:
            line = raw.rstrip()
            tail.append(line)
            del tail[:-40]
            if progress and line.startswith(("I:", "E:", "W:")):
                progress(f"{line} ({time.monotonic() - start:.0f}s)")
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if rc != 0:
        shutil.rmtree(dest, ignore_errors=True)
        text = "\n".join(tail)
        for pat in _MISSING:
            m = pat.search(text)
            if m:
                raise ImageError(
                    f'package "{m.group(1)}" is not available in Debian {release} for {arch}; '
                    f"fix the [packages] debian list of the suite or target that asks for it.\n{text}"
                )
        raise ImageError(
            f"mmdebstrap failed (exit {rc}) building Debian {release} {arch} from {mirror}; "
            f"check the mirror is reachable. Last output:\n{text}"
        )
