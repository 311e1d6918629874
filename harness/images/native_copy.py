"""Debian's own dpkg and python3 for the build host: the native copy an image build runs them from.

Fetched with ``mmdebstrap --variant=extract`` from the image's mirror and
release (extracted, not installed), cached per release, host architecture and
mirror, and marked stale when the archive moved on (:func:`mark_stale`).
Used by the build hooks in :mod:`harness.images.nativebuild`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: What the native copy holds: dpkg (for dpkg-deb) and the default python3.
NATIVE_PACKAGES = ("dpkg", "python3")

_BINNMU = re.compile(r"\+b\d+$")


class HookError(Exception):
    """A step of the build hooks failed the way the package's own postinst would have."""


# ------------------------------------------------------------------ versions


def deb_version(root: Path, package: str) -> str:
    """The version of ``package`` installed in ``root`` (from its dpkg status), or "" when it is not."""
    try:
        text = (root / "var/lib/dpkg/status").read_text(errors="replace")
    except OSError:
        return ""
    for para in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in para.splitlines() if ": " in line and line[:1] != " ")
        if fields.get("Package") == package and fields.get("Status", "").endswith(" installed"):
            return fields.get("Version", "")
    return ""


def same_build(a: str, b: str) -> bool:
    """Two Debian versions of one source upload: equal once a binNMU suffix (``+bN``) is dropped."""
    return bool(a) and _BINNMU.sub("", a) == _BINNMU.sub("", b)


def default_python(root: Path) -> str:
    """``root``'s default ``python3.X`` (where ``usr/bin/python3`` links to), or "" when it has none."""
    try:
        target = os.readlink(root / "usr/bin/python3")
    except OSError:
        return ""
    return target if re.fullmatch(r"python3\.\d+", target) else ""


# ------------------------------------------------------------------ the native copy


@dataclasses.dataclass(frozen=True)
class Native:
    """Debian's dpkg and python3 for the build host, extracted (not installed) into ``root``."""

    root: Path
    versions: dict[str, str]  # package -> Debian version, from the .deb files extracted

    @property
    def python(self) -> str:
        return default_python(self.root)

    def loader(self) -> Path:
        """The dynamic loader, relative to ``root``: a real file (a link there may be absolute)."""
        for cand in sorted(self.root.glob("usr/lib/*/ld-linux*.so.*")):
            if cand.is_file() and not cand.is_symlink():
                return cand.relative_to(self.root)
        raise HookError(f"no dynamic loader under {self.root}/usr/lib; remove {self.root.parent} to fetch it again.")

    def argv(self, at: str, program: str) -> list[str]:
        """The command that runs ``program`` (``usr/bin/X``) of this copy when the copy is seen at ``at``."""
        ld = self.loader()
        return [f"{at}/{ld}", "--library-path", f"{at}/{ld.parent}", f"{at}/{program}"]


#: Debian's names for the machines Python reports.
_DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el", "i686": "i386", "armv7l": "armhf"}


def host_debian_arch() -> str:
    """This host's Debian architecture name (amd64 on x86_64): building any other needs arch-test and qemu."""
    machine = platform.machine()
    return _DEBIAN_ARCH.get(machine, machine)


def _host_arch() -> str:
    return host_debian_arch()


def native_dir(release: str, mirror: str) -> Path:
    """Where the native copy for ``release`` from ``mirror`` is cached."""
    from harness.paths import native_dir as native_root

    tag = hashlib.sha256(mirror.encode()).hexdigest()[:12]
    return native_root() / f"{release}-{_host_arch()}-{tag}"


def versions_from_debs(names: Sequence[str]) -> dict[str, str]:
    """Package -> version from ``.deb`` file names as apt saves them (``name_version_arch.deb``, ``:`` as %3a)."""
    out = {}
    for name in names:
        parts = name.removesuffix(".deb").split("_")
        if name.endswith(".deb") and len(parts) == 3:
            out[parts[0]] = parts[1].replace("%3a", ":")
    return out


def ensure_native(release: str, mirror: str, *, say: Callable[[str], None] = print) -> Native | None:
    """The cached native copy of dpkg and python3 for ``release``, fetched when absent or stale; None if it fails.

    None means the build runs every step under emulation, as before; the reason is said.
    """
    import filelock

    from harness import mounts
    from harness.images import buildrun

    folder = native_dir(release, mirror)
    folder.parent.mkdir(parents=True, exist_ok=True)
    timeout = buildrun.deadline(buildrun.BUILD_TIMEOUT)
    with filelock.FileLock(str(folder) + ".lock", timeout=timeout):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            have = json.loads((folder / "native.json").read_text())
            if not have.get("stale"):
                return Native(folder / "root", dict(have["versions"]))
        mounts.unmount_and_remove(folder)  # absent, half-made or stale: fetch again
        folder.mkdir()
        start = time.monotonic()
        say(f"fetching Debian {release}'s {' and '.join(NATIVE_PACKAGES)} for {_host_arch()}, to build natively with")
        keep = folder / "debs"
        keep.mkdir()
        argv = [
            "mmdebstrap",
            "--variant=extract",
            f"--include={','.join(NATIVE_PACKAGES)}",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            f'--extract-hook=ls "$1/var/cache/apt/archives" > {shlex.quote(str(keep / "debs.txt"))}',
            "--",
            release,
            str(folder / "root"),
            mirror,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEBSTRAP_")}
        done = buildrun.run_logged(argv, timeout=timeout, env=env)
        try:
            versions = versions_from_debs((keep / "debs.txt").read_text().split())
        except OSError:
            versions = {}
        shutil.rmtree(keep, ignore_errors=True)
        if done.code != 0 or done.timed_out or "dpkg" not in versions:
            say(f"W: fetching a native dpkg and python3 failed, so the whole build runs emulated: {done.tail[-1:]}")
            mounts.unmount_and_remove(folder)
            return None
        meta = {"versions": versions, "seconds": round(time.monotonic() - start, 1)}
        (folder / "native.json").write_text(json.dumps(meta, indent=2))
        return Native(folder / "root", versions)


def mark_stale(native_root: Path) -> None:
    """Have the next build fetch the native copy again (the archive moved on: its versions differ)."""
    meta = native_root.parent / "native.json"
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(meta.read_text())
        data["stale"] = True
        meta.write_text(json.dumps(data, indent=2))
