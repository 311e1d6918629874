"""Files over SFTP: ``put()`` and ``get()`` of targets reached over SSH.

:func:`download` follows the one rule of ``Target.get`` (see
:mod:`harness.targets._common`): what the target holds is untrusted, so a
link is never followed, entry names that could step outside the destination
are refused, and the bytes are counted against a cap while they move.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Any

import paramiko

from harness.errors import TargetError
from harness.targets._common import GET_LIMIT, CopyBudget, kind_of, refused


def check_member_name(name: str, where: str) -> None:
    """Refuse a directory entry name that could step outside the destination."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise TargetError(
            f'refusing to copy "{where}/{name}" from the target: the entry name could point '
            "outside the destination folder; rename it in the target."
        )


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _local_dest(root: Path, path: Path, remote: str) -> Path:
    if path.is_symlink() or not _inside(root, path):
        raise TargetError(
            f'refusing to copy "{remote}" to "{path}": that local path is a link or lies outside '
            f'"{root}"; remove it and try again.'
        )
    return path


def download(sftp: paramiko.SFTPClient, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
    """Copy ``remote`` (file or folder) to ``local`` by the one rule of ``Target.get``.

    ``remote`` must be a regular file or a folder (checked with ``lstat``: a
    link there is not followed); a link, device, FIFO or socket inside a folder
    is skipped, never opened.  Each file's size is checked before it is copied
    and the bytes are counted while it is, so at most ``limit`` bytes come over
    in all.  Entry names with ``/`` or ``..`` and local links are refused.
    """
    budget = CopyBudget(remote, limit)
    try:
        top = sftp.lstat(remote)
    except OSError as e:
        raise TargetError(f'cannot copy "{remote}" from the target: {e.strerror or e}.') from e
    mode = top.st_mode or 0
    if stat.S_ISDIR(mode):
        local.mkdir(parents=True, exist_ok=True)
        root = local.resolve()
        _download_dir(sftp, remote, local, root, budget, 1)
    elif stat.S_ISREG(mode):
        local.parent.mkdir(parents=True, exist_ok=True)
        root = local.parent.resolve()
        _download_file(sftp, remote, _local_dest(root, local, remote), top, budget)
    else:
        raise refused(remote, kind_of(mode))


def _download_file(
    sftp: paramiko.SFTPClient, src: str, dest: Path, attr: paramiko.SFTPAttributes, budget: CopyBudget
) -> None:
    """Copy one regular file, refusing it before a byte moves when its size is already past the cap."""
    start = budget.used
    budget.take(attr.st_size or 0, src)

    def count(done: int, _size: int) -> None:  # called after each block: a file that grows is stopped too
        if start + done > budget.used:
            budget.take(start + done - budget.used, src)

    try:
        sftp.get(src, str(dest), callback=count)
    except BaseException:
        dest.unlink(missing_ok=True)  # never leave a cut-off copy that looks whole
        raise


def _download_dir(
    sftp: paramiko.SFTPClient, remote: str, local: Path, root: Path, budget: CopyBudget, depth: int
) -> None:
    for attr in sftp.listdir_attr(remote):
        name = attr.filename
        check_member_name(name, remote)
        src = str(PurePosixPath(remote) / name)
        dest = _local_dest(root, local / name, src)
        mode = attr.st_mode or 0
        if stat.S_ISDIR(mode):
            budget.entry(src, depth)
            dest.mkdir(exist_ok=True)
            _download_dir(sftp, src, dest, root, budget, depth + 1)
        elif stat.S_ISREG(mode):
            budget.entry(src, depth)
            _download_file(sftp, src, dest, attr, budget)
            os.chmod(dest, (stat.S_IMODE(mode) & 0o755) | 0o600)
        # links, devices, sockets and FIFOs: skipped, never followed or opened


def upload(sftp: paramiko.SFTPClient, local: Path, remote: str) -> None:
    """Copy ``local`` (file or folder) to ``remote``, creating parent folders."""
    if local.is_dir():
        _makedirs(sftp, remote)
        for dirpath, dirnames, filenames in os.walk(local):
            rel = Path(dirpath).relative_to(local)
            rdir = str(PurePosixPath(remote, *rel.parts))
            for name in [*dirnames, *filenames]:
                src = Path(dirpath) / name
                dst = f"{rdir}/{name}"
                if src.is_symlink():
                    with contextlib.suppress(OSError):
                        sftp.remove(dst)
                    sftp.symlink(os.readlink(src), dst)
                    if name in dirnames:
                        dirnames.remove(name)  # os.walk would not descend anyway
                elif src.is_dir():
                    _makedirs(sftp, dst)
                else:
                    _put_file(sftp, src, dst)
    elif local.is_file():
        parent = str(PurePosixPath(remote).parent)
        _makedirs(sftp, parent)
        _put_file(sftp, local, remote)
    else:
        raise TargetError(f'cannot copy "{local}" to the target: no such file or folder on the host.')


def _put_file(sftp: paramiko.SFTPClient, src: Path, dst: str) -> None:
    sftp.put(str(src), dst)
    sftp.chmod(dst, stat.S_IMODE(src.stat().st_mode))


def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    current = PurePosixPath("/") if path.startswith("/") else PurePosixPath()
    for part in PurePosixPath(path).parts:
        if part == "/":
            continue
        current = current / part
        try:
            attr = sftp.stat(str(current))
        except FileNotFoundError:
            sftp.mkdir(str(current))
            continue
        if not stat.S_ISDIR(attr.st_mode or 0):
            raise TargetError(f'cannot create folder "{current}" in the target: a file of that name exists.')


class SftpChannel:
    """The SFTP channel as ``SFTPClient`` sees it: a read or write stalled past the
    channel's timeout closes the channel, so the client's clean-up requests fail
    at once instead of each waiting out the timeout again."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self.chan = chan
        self.stalled = False

    def recv(self, n: int) -> bytes:
        try:
            data: bytes = self.chan.recv(n)
        except TimeoutError:
            self._stall()
            raise
        return data

    def send(self, data: bytes) -> int:
        try:
            sent: int = self.chan.send(data)
        except TimeoutError:
            self._stall()
            raise
        return sent

    def _stall(self) -> None:
        self.stalled = True
        with contextlib.suppress(Exception):
            self.chan.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chan, name)
