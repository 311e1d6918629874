"""The one rule every backend follows for copying back (``get()``)."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

from harness.errors import TargetError

# --------------------------------------------------------------------------- copying back (get)
#
# The one rule every backend's ``get()`` follows (stated in Target.get):
# the path asked for must be a regular file or a folder (a link, FIFO, socket
# or device there is a TargetError); inside a folder, regular files and
# folders are copied and links, FIFOs, sockets and devices are skipped, never
# followed or read; one get() copies at most ``GET_LIMIT`` bytes (or its
# ``limit``), ``GET_MAX_ENTRIES`` entries and ``GET_MAX_DEPTH`` levels of
# folders, and past any of them it is a TargetError naming the path and the cap.

#: Bytes one ``get()`` copies back at most, all files together (a backend's ``limit`` argument overrides it).
GET_LIMIT = 256 << 20
#: Files and folders one ``get()`` copies back at most.
GET_MAX_ENTRIES = 100_000
#: Levels below the copied folder a file or folder may lie at most (its direct entries are level 1).
GET_MAX_DEPTH = 64


def kind_of(mode: int) -> str:
    """What a file that is neither a regular file nor a folder is, for messages."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "neither a regular file nor a folder"


def refused(shown: str, kind: str) -> TargetError:
    """The error for a ``get()`` of something that is not a regular file or a folder."""
    return TargetError(
        f'refusing to copy "{shown}" from the target: it is {kind}; leapfrog copies back only '
        "regular files and folders, so the suite must leave a regular file there."
    )


def size_text(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n} bytes"


class CopyBudget:
    """What one ``get()`` may still copy; each ``take`` past a cap raises a TargetError."""

    def __init__(self, shown: str, limit: int = GET_LIMIT) -> None:
        self.shown = shown
        self.limit = limit
        self.used = 0
        self.entries = 0

    def take(self, size: int, path: str) -> None:
        """Count ``size`` more bytes, copied from ``path``."""
        self.used += size
        if self.used > self.limit:
            raise TargetError(
                f'refusing to copy "{self.shown}" from the target: it holds more than {size_text(self.limit)}, '
                f'the most one copy back takes (passed at "{path}"); have the suite write less there.'
            )

    def entry(self, path: str, depth: int) -> None:
        """Count one more file or folder, ``depth`` levels below the copied folder."""
        self.entries += 1
        if self.entries > GET_MAX_ENTRIES or depth > GET_MAX_DEPTH:
            what = (
                f"{GET_MAX_ENTRIES} files and folders"
                if depth <= GET_MAX_DEPTH
                else f"{GET_MAX_DEPTH} levels of folders"
            )
            raise TargetError(
                f'refusing to copy "{self.shown}" from the target: it holds more than {what}, the most one '
                f'copy back takes (passed at "{path}"); have the suite write less there.'
            )


_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_out(parent: int, name: str, dest: Path, *, shown: str, limit: int = GET_LIMIT) -> None:
    """``get()`` for a target whose files the host reads directly (native, chroot).

    Copies ``name`` in the open folder ``parent`` to ``dest`` by the rule above:
    nothing is opened through a link, a FIFO is never opened for reading (so it
    cannot block), and files are read through their own descriptor after an
    ``fstat`` shows a regular file, so a file swapped after the check is still
    never anything else.
    """
    budget = CopyBudget(shown, limit)
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        raise TargetError(f'cannot copy "{shown}" from the target: it does not exist.') from None
    if stat.S_ISDIR(st.st_mode):
        try:
            fd = os.open(name, _OPEN_DIR, dir_fd=parent)
        except OSError as e:
            raise refused(shown, "not a folder any more (it changed while being copied)") from e
        try:
            _copy_dir(fd, dest, shown, budget, 1)
        finally:
            os.close(fd)
    elif stat.S_ISREG(st.st_mode):
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not _copy_file(parent, name, dest, shown, budget):
            raise refused(shown, "not a regular file any more (it changed while being copied)")
    else:
        raise refused(shown, kind_of(st.st_mode))


def _copy_dir(fd: int, dest: Path, shown: str, budget: CopyBudget, depth: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with os.scandir(fd) as entries:
        names = [e.name for e in entries]
    for name in sorted(names):
        path = f"{shown}/{name}"
        try:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(mode):
            budget.entry(path, depth)
            try:
                sub = os.open(name, _OPEN_DIR, dir_fd=fd)
            except OSError:
                continue  # swapped for a link or removed since: skipped like one
            try:
                _copy_dir(sub, dest / name, path, budget, depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISREG(mode):
            budget.entry(path, depth)
            _copy_file(fd, name, dest / name, path, budget)


def _copy_file(parent: int, name: str, dest: Path, shown: str, budget: CopyBudget) -> bool:
    """Copy one regular file; False (nothing written) when ``name`` is not one when opened."""
    try:
        src = os.open(name, _OPEN_FILE, dir_fd=parent)
    except OSError:
        return False  # a link (ELOOP), a socket (ENXIO), gone: never followed
    try:
        st = os.fstat(src)
        if not stat.S_ISREG(st.st_mode):
            return False
        budget.take(st.st_size, shown)  # refused before a byte is written when its size is already too much
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            read = grown = 0
            while chunk := os.read(src, 1 << 20):
                read += len(chunk)
                if read - st.st_size > grown:  # it grew while being read: count what came on top
                    budget.take(read - st.st_size - grown, shown)
                    grown = read - st.st_size
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
            os.fchmod(out, (stat.S_IMODE(st.st_mode) & 0o755) | 0o600)
        except BaseException:
            os.close(out)
            dest.unlink(missing_ok=True)  # never leave a cut-off copy that looks whole
            raise
        os.close(out)
    finally:
        os.close(src)
    return True


def safe_extract(tar: tarfile.TarFile, dest: Path, *, top: str, budget: CopyBudget) -> None:
    """Extract ``top`` (a file or folder) from an archive a target sent, by the rule above.

    Absolute names and ``..`` are refused with a TargetError; links, devices
    and FIFOs below ``top`` are skipped (a hard link to a file already taken is
    kept: it is the same regular file); ``top`` itself must be a file or folder.
    """
    dest = dest.resolve()
    keep: list[tarfile.TarInfo] = []
    files: set[str] = set()
    for member in tar:
        name = member.name
        target_path = (dest / name).resolve()
        if os.path.isabs(name) or ".." in Path(name).parts or not (target_path == dest or dest in target_path.parents):
            raise TargetError(f'refused to copy "{name}" from the target: it points outside {dest}.')
        parts = Path(name).parts
        if parts == (top,):
            if not (member.isfile() or member.isdir()):
                raise refused(budget.shown, _tar_kind(member))
        elif parts[:1] != (top,):
            continue  # not asked for
        else:
            if not (member.isfile() or member.isdir() or (member.islnk() and member.linkname in files)):
                continue
            budget.entry(f"{budget.shown}/{'/'.join(parts[1:])}", len(parts) - 1)
        if member.isfile() or member.islnk():
            budget.take(member.size if member.isfile() else 0, f"{budget.shown}/{'/'.join(parts[1:])}")
            files.add(name)
        keep.append(member)
    tar.extractall(dest, members=keep, filter="data")


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return "a link"
    if member.isfifo():
        return "a FIFO"
    if member.ischr() or member.isblk():
        return "a device"
    return "neither a regular file nor a folder"
