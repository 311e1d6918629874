"""Files into and out of a chroot's root filesystem, from the host side, never through a link the target made.

What a target holds is untrusted: a folder on the way is opened one level at a
time without following links, and a link the target left where a file is
copied is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path

from harness.errors import TargetError


def open_dir(root: Path, parts: list[str], remote: str, *, create: bool, target: str) -> int:
    """An fd of the folder ``parts`` below ``root``, opened one level at a time without following links.

    A link (or a non-folder) the target put on the way is refused: it
    could lead anywhere on the host.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts:
            try:
                sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise TargetError(
                    f'target {target}: "{remote}" passes through "{part}", which is a link or not a folder '
                    "in the target; nothing copied there (a target must not redirect leapfrog's files)."
                ) from e
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def put_file(src: Path, parent: int, name: str) -> None:
    """Copy the host file ``src`` to ``name`` in the open folder ``parent``, replacing a link there."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode):
            os.unlink(name, dir_fd=parent)
    st = os.stat(src)
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600, dir_fd=parent)
    with open(fd, "wb") as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, 1 << 20)
        os.fchmod(out.fileno(), stat.S_IMODE(st.st_mode))
        out.flush()
        os.utime(out.fileno(), ns=(st.st_atime_ns, st.st_mtime_ns))


def put_dir(src: Path, parent: int, name: str) -> None:
    """Copy the host folder ``src`` to ``name`` in ``parent``; links in ``src`` are copied as links."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode):
            os.unlink(name, dir_fd=parent)
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o755, dir_fd=parent)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    try:
        os.chmod(fd, stat.S_IMODE(os.stat(src).st_mode))
        for entry in os.scandir(src):
            if entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.name, dir_fd=fd)
                os.symlink(os.readlink(entry.path), entry.name, dir_fd=fd)
            elif entry.is_dir(follow_symlinks=False):
                put_dir(Path(entry.path), fd, entry.name)
            elif entry.is_file(follow_symlinks=False):
                put_file(Path(entry.path), fd, entry.name)
    finally:
        os.close(fd)
