"""The work folders of chroot targets: where they live, who holds one, and cleaning up after a kill -9.

A work folder ``runs/<target>-XXXX`` is locked (``flock``) for the target's
whole life, from the moment it exists until it is removed, and records its
owner (pid and start time).  The next start cleans up exactly the folders
nobody holds: it kills what still runs in them, unmounts and removes them
(:mod:`harness.mounts`), and never deletes a folder that still holds a mount.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import time
from pathlib import Path

from harness import mounts
from harness.errors import TargetError
from harness.paths import runs_dir
from harness.userland import owner_gone, process_start

LOCK = "lock"  # flock-ed by the live target that owns a work folder
OWNER = "owner.json"
#: A work folder without a lock file younger than this is being set up by a starting target.
YOUNG_SECONDS = 60.0


def pids_rooted_at(root: Path) -> list[int]:
    """Processes whose root directory is ``root`` (what runs in the chroot)."""
    want = os.path.realpath(root)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/root") == want:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def kill_rooted(root: Path) -> int:
    """SIGKILL everything running in ``root``; returns how many were killed."""
    killed = 0
    for _ in range(5):
        pids = pids_rooted_at(root)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.1)
    return killed


def _lock(workdir: Path, *, wait: bool) -> int | None:
    """An fd holding ``workdir``'s flock, or None when another live target holds it (or there is no lock file)."""
    try:
        fd = os.open(workdir / LOCK, os.O_RDWR | os.O_NOFOLLOW | (os.O_CREAT if wait else 0), 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _owner_alive(workdir: Path) -> bool:
    """What a folder without a lock file says: made by a starting target, or an older leapfrog still running."""
    try:
        if time.time() - os.lstat(workdir).st_mtime < YOUNG_SECONDS:
            return True
        owner = json.loads((workdir / OWNER).read_text())
        pid, started = int(owner["pid"]), str(owner.get("pid_start", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return pid > 0 and not owner_gone(pid, started)


def cleanup_stale() -> list[Path]:
    """Unmount and remove work folders whose target is gone (kill -9, OOM); returns them.

    Only folders whose lock this process can take are touched: a live target
    holds its lock from the moment the folder exists until it is removed.
    Raises :class:`harness.mounts.MountError` (naming the ``umount`` to run)
    and leaves the folder when one of its mounts cannot be undone.
    """
    cleaned = []
    for d in sorted(runs_dir().iterdir()):
        if d.is_symlink() or not d.is_dir():
            continue
        fd = _lock(d, wait=False)
        if fd is None and (os.path.lexists(d / LOCK) or _owner_alive(d)):
            continue  # a live target's folder
        try:
            kill_rooted(d / "root")
            mounts.unmount_and_remove(d)
            cleaned.append(d)
        finally:
            if fd is not None:
                os.close(fd)
    return cleaned


def make_workdir(name: str) -> tuple[Path, int | None]:
    """A fresh ``runs/<name>-XXXX`` folder and the fd of its lock, locked and owned before anything is mounted."""
    parent = runs_dir()
    for _ in range(100):
        workdir = parent / f"{name}-{secrets.token_hex(4)}"
        try:
            workdir.mkdir(mode=0o700)
        except FileExistsError:
            continue
        fd = _lock(workdir, wait=True)
        tmp = workdir / f"{OWNER}.tmp"
        owner = {"pid": os.getpid(), "pid_start": process_start(os.getpid()) or "", "target": name}
        tmp.write_text(json.dumps(owner))
        tmp.replace(workdir / OWNER)
        return workdir, fd
    raise TargetError(f"target {name}: could not make a work folder in {parent}.")
