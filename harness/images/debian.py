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
from harness.hostreq import install_hint
from harness.images import buildrun, nativebuild
from harness.images.native_copy import host_debian_arch

#: Always in a Debian image: what the probe and pytest need.  ``ca-certificates`` is added only for an
#: https mirror (apt in the image needs it to layer packages later): nothing of leapfrog's in the
#: target uses TLS, and its postinst and trigger run ``update-ca-certificates`` twice under emulation
#: (~28 s of a cold build).  A suite that needs the trust store lists it in its ``packages``.
BASE_PACKAGES = ["python3", "python3-pytest"]
HTTPS_PACKAGES = ["ca-certificates"]

_MISSING = [
    re.compile(r"Unable to locate package (\S+)"),
    re.compile(r"Package '?([^' ]+)'? has no installation candidate"),
    re.compile(r"E: Package '([^']+)'"),
]


def mmdebstrap_argv(
    release: str, arch: str, mirror: str, packages: list[str], dest: Path, *, hooks: list[str] | None = None
) -> list[str]:
    from harness.config import check_package_names, check_release

    # Checked again here, not only when the file is read: a name starting with "-" would be an option.
    check_release(release)
    check_package_names(packages, "debian", "packages")
    if mirror.startswith("-") or arch.startswith("-"):
        raise ImageError(
            f"refusing to run mmdebstrap with mirror {mirror!r} and arch {arch!r}: one looks like an option."
        )
    return [
        "mmdebstrap",
        "--verbose",  # dpkg's "Setting up X" lines drive the progress display
        f"--arch={arch}",
        "--variant=minbase",
        '--aptopt=APT::Install-Recommends "false"',
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        f"--include={','.join(sorted(set(packages)))}",
        *(hooks or []),
        "--",
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
) -> dict[str, float]:
    """Build into ``dest`` (which must not exist); return the seconds each phase took.  On failure ``dest`` is removed.

    mmdebstrap gets ``LEAPFROG_BUILD_TIMEOUT`` seconds (see :mod:`harness.images.buildrun`);
    a failure is reported with its own ``E:`` lines as the cause.  For a foreign
    architecture, unpacking and byte-compiling run natively (see
    :mod:`harness.images.nativebuild`; ``LEAPFROG_NATIVE_BUILD=0`` turns that off).
    """
    from harness import mounts

    needed = ["mmdebstrap"] if arch == host_debian_arch() else ["mmdebstrap", "arch-test"]
    absent = [prog for prog in needed if shutil.which(prog) is None]
    if absent:
        raise ImageError(
            f"building a Debian {arch} image on this host needs {' and '.join(absent)}, which "
            f"{'is' if len(absent) == 1 else 'are'} not installed; install with: {install_hint(absent)} "
            "(or run scripts/setup-host.sh)."
        )
    if os.geteuid() != 0:
        raise ImageError("building a Debian image needs root (mmdebstrap, chroot); run leapfrog as root or with sudo.")
    say = progress or (lambda _m: None)
    native = None
    fetched = 0.0
    enabled = nativebuild.enabled()
    if enabled and arch != host_debian_arch():
        fetch_start = time.monotonic()
        native = nativebuild.ensure_native(release, mirror, say=say)
        fetched = round(time.monotonic() - fetch_start, 1)
    hooks = nativebuild.hook_argv(native.root if native else None) if enabled else []
    argv = mmdebstrap_argv(release, arch, mirror, packages, dest, hooks=hooks)
    timeout = buildrun.deadline(buildrun.BUILD_TIMEOUT)
    start = time.monotonic()
    clock = buildrun.PhaseClock(start)
    configured = 0
    last_shown = 0.0

    def show(line: str) -> None:
        nonlocal configured, last_shown
        clock.feed(line, time.monotonic())
        if progress is None:
            return
        if line.startswith(("I:", "E:", "W:")) and not line.startswith("I: running"):
            progress(f"{line} ({time.monotonic() - start:.0f}s)")
        elif line.startswith("Setting up "):
            configured += 1
            now = time.monotonic()
            if now - last_shown > 5:  # at most one line every 5 s
                last_shown = now
                progress(f"  configured {configured} packages, now {line[11:].partition(' ')[0]} ({now - start:.0f}s)")

    env = {**os.environ, **(nativebuild.BUILD_ENV if enabled else {})}
    try:
        done = buildrun.run_logged(argv, timeout=timeout, on_line=show, env=env)
    except BaseException:
        mounts.unmount_and_remove(dest)  # mmdebstrap was stopped; it may have left /proc or /dev mounted
        raise
    if done.code != 0 or done.timed_out:
        mounts.unmount_and_remove(dest)
        text = "\n".join(done.tail)
        for pat in _MISSING:
            m = next(filter(None, (pat.search(e) for e in [*done.errors, text])), None)
            if m:
                raise ImageError(
                    f'package "{m.group(1)}" is not available in Debian {release} for {arch}; '
                    f"fix the [packages] debian list of the suite or target that asks for it.\n{text}"
                )
        raise ImageError(
            buildrun.explain(
                "mmdebstrap",
                done,
                f"building Debian {release} {arch} from {mirror}",
                mirror=mirror,
                setting=buildrun.BUILD_TIMEOUT,
            )
        )
    phases = clock.finish(time.monotonic())
    return {"native tools": fetched, **phases} if native is not None else phases


def _chroot_mounts(root: Path) -> list[list[str]]:
    """What apt in ``root`` needs mounted; each bind is made a slave right away (never shared with the host)."""
    return [
        ["mount", "-t", "proc", "proc", str(root / "proc")],
        ["mount", "--rbind", "/sys", str(root / "sys")],
        ["mount", "--make-rslave", str(root / "sys")],
        ["mount", "--rbind", "/dev", str(root / "dev")],
        ["mount", "--make-rslave", str(root / "dev")],
    ]


def layer_rootfs(
    base: Path,
    dest: Path,
    release: str,
    arch: str,
    extra: list[str],
    *,
    progress: Callable[[str], None] | None = None,
    mirror: str = "",
) -> None:
    """Make ``dest`` = a copy of ``base`` plus ``extra`` packages installed with apt.

    Much faster than a fresh mmdebstrap when one package is added to a big
    image.  On failure ``dest`` is removed; ``base`` is never modified.  The
    mounts (/proc, /sys, /dev) are recorded in ``dest``'s parent folder (the
    image folder) before they are made, so a run killed mid-way is cleaned up
    by the next one; ``dest`` is only removed once they are all gone.  As in
    :func:`build_rootfs`, the packages of a foreign architecture are unpacked
    and byte-compiled natively when ``mirror`` (the image's) is given.
    """
    if os.geteuid() != 0:
        raise ImageError("layering a Debian image needs root (chroot, apt); run leapfrog as root or with sudo.")
    say = progress or (lambda _m: None)
    start = time.monotonic()
    say(f"copying the cached image with {len(extra)} package(s) to add")
    done = subprocess.run(
        ["cp", "-a", "--reflink=auto", str(base), str(dest)], capture_output=True, text=True, check=False
    )
    from harness import mounts

    if done.returncode != 0:
        mounts.remove_tree(dest)
        raise ImageError(f"could not copy {base} to {dest}: {done.stderr.strip()}")
    folder = dest.parent  # holds the mount journal
    try:
        for argv in _chroot_mounts(dest):
            if argv[1] == "--make-rslave":
                made = subprocess.run(argv, capture_output=True, text=True, check=False)
            else:
                made = mounts.mount(folder, argv)
            if made.returncode != 0:
                raise ImageError(f"`{' '.join(argv)}` failed while layering {dest}: {made.stderr.strip()}")
        resolv = dest / "etc" / "resolv.conf"
        if resolv.is_symlink():
            resolv.unlink()  # copy the host's file in, never through a link out of the image
        shutil.copyfile("/etc/resolv.conf", resolv)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}
        apt_timeout = buildrun.deadline(buildrun.APT_TIMEOUT)
        native = None
        if nativebuild.enabled():
            if mirror and arch != host_debian_arch():
                native = nativebuild.ensure_native(release, mirror, say=say)
            nativebuild.essential(dest, native, say=say)
            env.update(nativebuild.BUILD_ENV)
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "--", *sorted(extra)],
            ["apt-get", "clean"],
        ):
            say(f"{' '.join(argv[:2])} ({time.monotonic() - start:.0f}s)")
            run = buildrun.run_logged(["chroot", str(dest), *argv], timeout=apt_timeout, env=env)
            if run.code != 0 or run.timed_out:
                text = "\n".join(run.tail)
                for pat in _MISSING:
                    m = next(filter(None, (pat.search(e) for e in [*run.errors, text])), None)
                    if m:
                        raise ImageError(
                            f'package "{m.group(1)}" is not available in Debian {release} for {arch}; fix the '
                            f"[packages] debian list of the suite or target that asks for it.\n{text}"
                        )
                raise ImageError(
                    buildrun.explain(
                        f"`{' '.join(argv[:2])}`", run, f"in the image {dest}", setting=buildrun.APT_TIMEOUT
                    )
                )
        if nativebuild.enabled():
            say(f"byte-compiling and the initramfs ({time.monotonic() - start:.0f}s)")
            hook = nativebuild.customize_argv(dest, native.root if native else None)
            run = buildrun.run_logged(hook, timeout=apt_timeout)
            if run.code != 0 or run.timed_out:
                raise ImageError(
                    buildrun.explain("the customize step", run, f"in the image {dest}", setting=buildrun.APT_TIMEOUT)
                )
        shutil.rmtree(dest / "var" / "lib" / "apt" / "lists", ignore_errors=True)
        (dest / "var" / "lib" / "apt" / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    except BaseException:
        _unmount(folder, dest)  # raises, leaving dest, when a mount stays
        mounts.remove_tree(dest)
        raise
    _unmount(folder, dest)


def _unmount(folder: Path, dest: Path) -> None:
    """Unmount what was mounted for layering ``dest``; raise, leaving ``dest`` in place, if one stays."""
    from harness import mounts

    left = mounts.unmount_under(folder)
    if left:
        raise mounts.MountError(
            f"layering {dest}: {', '.join(left)} could not be unmounted, so {dest} was left in place; "
            f"run: umount -R -l {' '.join(left)} and then remove {dest}."
        )
    (folder / mounts.JOURNAL).unlink(missing_ok=True)
