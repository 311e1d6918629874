"""Reading back what a target wrote: its results files, never trusted.

A results file is read only when it is a regular file (:func:`read_regular`
never follows a link nor opens a FIFO or device), and at most
``probe_lines.MAX_RESULTS_BYTES`` of it.  :class:`ResultsDir` is the cell's
folder as the host reads it; :class:`Tail` reads it while pytest still runs.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from harness import probe_lines
from harness.errors import TargetError
from harness.model import CaseResult
from harness.probe_lines import lines_of, parse_probe_lines
from harness.targets import Target


class NotRegularFile(TargetError):
    """A results file the target replaced with a link, folder, FIFO, socket or device."""


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def read_regular(
    path: str | Path, *, dir_fd: int | None = None, offset: int = 0, limit: int | None = None, shown: str = ""
) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of a regular file from ``offset``, and whether more was there.

    The file is the target's: it is checked with lstat before it is opened, so a
    FIFO or device is never opened; it is opened with ``O_NOFOLLOW | O_NONBLOCK``
    and checked again with fstat, so a link is never followed and a swap in
    between never blocks.  ``FileNotFoundError`` when it is missing,
    :class:`NotRegularFile` when it is anything but a regular file.
    """
    shown = shown or str(path)
    limit = probe_lines.MAX_RESULTS_BYTES if limit is None else limit

    def refuse(what: str) -> NotRegularFile:
        return NotRegularFile(
            f'"{shown}" is {what}, not a regular file: the suite replaced the file leapfrog reads its results '
            f"from, so leapfrog refused it. Leave the file named by LEAPFROG_RESULTS to the probe."
        )

    st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise refuse(_file_kind(st.st_mode))
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise refuse("a symbolic link") from e
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(_file_kind(st.st_mode))
        parts: list[bytes] = []
        want = limit + 1  # one byte more tells whether the file goes on
        position = offset
        while want > 0:
            chunk = os.pread(fd, min(want, 1 << 20), position)
            if not chunk:
                break
            parts.append(chunk)
            position += len(chunk)
            want -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(parts)
    return data[:limit], len(data) > limit


class ResultsDir:
    """The cell's folder in the target, as the host reads result files from it.

    Where the target has a host path (chroot, native) the folder is opened once,
    before the suite runs, and files are read relative to that descriptor: a
    suite that later swaps the folder for a link cannot redirect the host.
    Elsewhere (docker, VMs, ssh) a file is first copied out with ``get()`` into
    a private folder.  Either way it is read with :func:`read_regular`.
    """

    def __init__(self, target: Target, base: str, tmp: Path) -> None:
        self.target = target
        self.base = base
        self.tmp = tmp
        self.fd: int | None = None
        local = target.local_path(base)
        if local is not None:
            try:
                self.fd = os.open(local, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as e:
                raise TargetError(
                    f'target {target.name}: cannot open the cell folder "{base}" from the host ({e.strerror}).'
                ) from e

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def reader(self, name: str) -> Callable[[int, int], bytes] | None:
        """For streaming while pytest runs: (offset, limit) -> bytes; None without a host path."""
        fd = self.fd
        if fd is None:
            return None

        def read(offset: int, limit: int) -> bytes:
            return read_regular(name, dir_fd=fd, offset=offset, limit=limit)[0]

        return read

    def read(self, name: str) -> tuple[bytes, bool, str]:
        """(data, more than ``MAX_RESULTS_BYTES`` was there, why nothing was copied out).

        Raises :class:`NotRegularFile` when the target put anything but a regular file there.
        """
        shown = f"{self.base}/{name}"
        try:
            if self.fd is not None:
                data, more = read_regular(name, dir_fd=self.fd, shown=shown)
                return data, more, ""
            local = self.tmp / name
            if local.is_dir() and not local.is_symlink():
                shutil.rmtree(local)  # our own copy from an earlier pass
            local.unlink(missing_ok=True)
            try:
                self.target.get(shown, local)
            except TargetError as e:
                return b"", False, str(e)
            data, more = read_regular(local, shown=shown)
            return data, more, ""
        except FileNotFoundError:
            return b"", False, f'"{shown}" does not exist.'
        except NotRegularFile:
            raise
        except OSError as e:
            raise NotRegularFile(f'"{shown}" could not be read from the host ({e.strerror or e}).') from e


class Tail:
    """While pytest runs, read the probe's results file from the host and announce finished cases.

    Only for targets with a host-readable path (chroot, native); a case counts
    once it is a complete line, so a half-written line is left for the next look.
    ``read(offset, limit)`` is :meth:`ResultsDir.reader`: it never follows a
    link nor opens a FIFO; past ``MAX_RESULTS_BYTES`` the tail stops looking.
    """

    INTERVAL = 0.5
    CHUNK = probe_lines.MAX_RESULT_LINE * 4

    def __init__(self, read: Callable[[int, int], bytes] | None, on_cases: Callable[[list[CaseResult]], None]) -> None:
        self.read = read
        self.on_cases = on_cases
        self.offset = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Tail:
        if self.read is not None:
            self.thread = threading.Thread(target=self._loop, name="leapfrog-tail", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stop.wait(self.INTERVAL) and self.offset < probe_lines.MAX_RESULTS_BYTES:
            self.poll()

    def poll(self) -> None:
        assert self.read is not None
        try:
            chunk = self.read(self.offset, self.CHUNK)
        except (OSError, TargetError):
            return  # missing yet, or refused: the read after the pass says why
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) >= self.CHUNK:  # a line longer than any valid one: skip past it
                self.offset += len(chunk)
            return
        self.offset += end + 1
        cases = parse_probe_lines(lines_of(chunk[: end + 1])).cases
        if cases:
            self.on_cases(cases)


def cases_in(target: Target, base: str, name: str, tmp: Path) -> list[CaseResult]:
    """The cases of results file ``name`` in the cell folder ``base`` of ``target`` (none when it is missing).

    ``tmp`` is a private host folder for a copy, where the target has no host path.
    """
    results = ResultsDir(target, base, tmp)
    try:
        data, _more, _missing = results.read(name)
    finally:
        results.close()
    return parse_probe_lines(lines_of(data)).cases
