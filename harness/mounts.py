"""Mount bookkeeping that cannot harm the host.

leapfrog binds the host's /dev, /sys and /proc into root filesystems it later
deletes.  Deleting such a tree while a bind is still up deletes the host's
device nodes through it, so every removal of a tree that may have held a mount
goes through :func:`unmount_and_remove`:

* paths are compared with the kernel's view: ``/proc/self/mountinfo`` fully
  unescaped (``\\040`` space, ``\\011`` tab, ``\\012`` newline, ``\\134``
  backslash) and the tree's path resolved with ``realpath``;
* each mount is recorded in a journal (``mounts.journal`` in the tree) *before*
  it is made, so leftovers of a process killed with SIGKILL are known;
* unmounting first turns the mounts into slaves, so an unmount never
  propagates back to the host's own /dev or /sys;
* :func:`remove_tree` re-reads the mount table just before deleting, refuses
  when anything below is mounted, never follows a symbolic link and never
  crosses into another file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
from pathlib import Path

from harness.errors import LeapfrogError

JOURNAL = "mounts.journal"
MOUNTINFO = "/proc/self/mountinfo"

_OCTAL = re.compile(r"\\([0-7]{3})")


class MountError(LeapfrogError):
    """A mount could not be made or undone safely; the tree involved was left in place."""


def unescape(field: str) -> str:
    """A mountinfo field as the kernel meant it: every ``\\NNN`` octal escape decoded."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[str]:
    """The mount points listed in mountinfo ``text`` (field 5 of each line), unescaped."""
    points = []
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) >= 5:
            points.append(unescape(fields[4]))
    return points


def mount_points() -> list[str]:
    """Every mount point the kernel lists for this process, read now (from :data:`MOUNTINFO`)."""
    with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def resolved(path: Path | str) -> str:
    """``path`` with every symbolic link resolved, as the kernel writes it in mountinfo."""
    return os.path.realpath(path)


def _depth(mnt: str) -> tuple[int, int]:
    return (mnt.count("/"), len(mnt))


def _below(mnt: str, prefix: str) -> bool:
    return mnt == prefix or mnt.startswith(prefix.rstrip("/") + "/")


def mounts_under(path: Path | str) -> list[str]:
    """Mount points at or below ``path`` (resolved first), deepest first."""
    prefix = resolved(path)
    found = {m for m in mount_points() if _below(m, prefix)}
    return sorted(found, key=_depth, reverse=True)


# ------------------------------------------------------------------ journal


def record_mount(tree: Path, target: Path) -> None:
    """Write down that ``target`` (inside ``tree``) is about to be mounted; call it BEFORE mounting.

    Not fsync-ed (about 5 ms a line): the journal only has to outlive this
    process (a kill -9), and a written line is in the page cache every later
    reader sees; a crash of the machine that could lose it takes the mounts
    with it.
    """
    line = json.dumps({"target": resolved(target), "pid": os.getpid()}) + "\n"
    fd = os.open(tree / JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def journal_entries(tree: Path) -> list[str]:
    """The mount points recorded in ``tree``'s journal that lie inside ``tree``."""
    prefix = resolved(tree)
    try:
        fd = os.open(Path(prefix) / JOURNAL, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return []
    with open(fd, encoding="utf-8", errors="replace") as f:
        text = f.read(1 << 20)
    out = []
    for line in text.splitlines():
        try:
            target = json.loads(line)["target"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(target, str) and _below(target, prefix):
            out.append(target)
    return out


def mount(tree: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the ``mount`` command ``argv`` whose last item is the mount point, journaled in ``tree`` first.

    The mount point must be a real folder inside ``tree``: a link there (which
    could lead to a host folder) is refused with :class:`MountError`.
    """
    target = Path(argv[-1])
    real = resolved(target)
    if os.path.islink(target) or not os.path.isdir(real) or not _below(real, resolved(tree)):
        raise MountError(f"refusing to mount on {target}: it is not a folder inside {tree} (a link?).")
    record_mount(tree, Path(real))
    return subprocess.run([*argv[:-1], real], capture_output=True, text=True, check=False)


# ------------------------------------------------------------------ unmount and remove


def _sh(argv: list[str]) -> int:
    return subprocess.run(argv, capture_output=True, check=False).returncode


def topmost(points: set[str] | list[str]) -> list[str]:
    """The mount points of ``points`` that lie below no other one of them, shallowest first."""
    tops: list[str] = []
    for mnt in sorted(set(points), key=_depth):
        if not any(_below(mnt, top) for top in tops):
            tops.append(mnt)
    return tops


def unmount_under(tree: Path, *, lazy: bool = True) -> list[str]:
    """Unmount everything at or below ``tree`` (mountinfo and journal); returns what is still mounted.

    Each mount is made a slave first, so its unmount never propagates to the
    host's own mounts (a bind of /dev made shared by a killed run, say).  The
    first pass takes whole subtrees: one recursive ``mount --make-rslave`` per
    top-most mount, then one ``umount -R`` of it (which unmounts only that
    mount's own subtree, all of it made a slave just before).  What is still
    mounted afterwards (a busy mount, one that was hidden under another) is
    taken one mount at a time, each made a slave before any unmount, and
    ``lazy`` detaches a busy mount with ``umount -l`` when a plain unmount fails.
    """
    recorded = set(journal_entries(tree))
    for attempt in range(4):
        live = set(mount_points())
        targets = (live & recorded) | set(mounts_under(tree))
        if not targets:
            return []
        if attempt == 0:
            tops = topmost(targets)
            for mnt in tops:
                _sh(["mount", "--make-rslave", mnt])
            for mnt in tops:
                _sh(["umount", "-R", mnt])
            continue
        for mnt in sorted(targets, key=_depth):  # shallowest first
            _sh(["mount", "--make-rslave", mnt])
        for mnt in sorted(targets, key=_depth, reverse=True):
            if _sh(["umount", mnt]) != 0 and lazy:
                _sh(["umount", "-l", mnt])
    return mounts_under(tree)


def _umount_hint(mounts: list[str]) -> str:
    import shlex

    return "; ".join(f"umount -R -l {shlex.quote(m)}" for m in mounts)


def remove_tree(tree: Path) -> None:
    """Delete ``tree`` if nothing below it is mounted; never follows links or crosses file systems.

    Raises :class:`MountError` naming the mounts (and the ``umount``
    command to run) and leaves the tree when the mount table, re-read just
    before deleting, shows a mount below it, or when a folder inside lives on
    another device.
    """
    try:
        st = os.lstat(tree)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(tree)  # a file or a link: the link itself goes, never what it points to
        return
    left = mounts_under(tree)
    if left:
        raise MountError(
            f"{tree} still holds {len(left)} mount(s) ({', '.join(left)}), so it was left in place; "
            f"unmount them by hand ({_umount_hint(left)}) and run again."
        )
    crossed: list[str] = []
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if os.fstat(fd).st_dev != st.st_dev:
            raise MountError(f"{tree} changed while it was being removed; it was left in place.")
        _empty_dir(fd, str(tree), st.st_dev, crossed)
    finally:
        os.close(fd)
    if crossed:
        raise MountError(
            f"{tree} was not removed: {', '.join(crossed[:5])} lie(s) on another file system (a mount); "
            f"unmount them by hand ({_umount_hint(crossed[:5])}) and run again."
        )
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(tree)


def _empty_dir(fd: int, where: str, dev: int, crossed: list[str]) -> None:
    """Delete everything inside the open folder ``fd`` that lives on device ``dev``."""
    for name in os.listdir(fd):
        path = f"{where}/{name}"
        try:
            st = os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
            continue
        if st.st_dev != dev:
            crossed.append(path)
            continue
        try:
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            continue
        try:
            if os.fstat(sub).st_dev != dev:  # swapped for a mount point since lstat
                crossed.append(path)
                continue
            before = len(crossed)
            _empty_dir(sub, path, dev, crossed)
        finally:
            os.close(sub)
        if len(crossed) == before:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(name, dir_fd=fd)


def unmount_and_remove(tree: Path) -> None:
    """Unmount what the journal and the mount table show below ``tree``, then :func:`remove_tree` it."""
    if not os.path.lexists(tree):
        return
    if os.path.isdir(tree) and not os.path.islink(tree):
        unmount_under(tree)
    remove_tree(tree)
