"""What a target's commands leave running, found by a tag in their environment and killed at ``stop()``.

Each native or ssh target object draws a random *family* (16 hex digits) when
it is made, and every command it runs gets one more environment variable,
``LEAPFROG_RUN=<family>.<16 hex digits>`` (a tag of its own per command).
Children inherit their environment, also those that call ``setsid`` or fork
twice, so whatever a command started carries its tag; an unrelated process
never carries our random one.  At ``stop()`` every process whose initial
environment (``/proc/PID/environ``) holds a ``LEAPFROG_RUN`` entry of the
family is SIGKILLed; on a timeout, those holding exactly that command's tag.
Nothing is chosen by process group or by a PID seen earlier, since both can
be reused by an unrelated process once theirs has ended.

A process that clears or rewrites its environment (``env -i``, ``execve``
with a new one) sheds the tag and is not found.

Only the standard library is used: the same file runs on the target as
``python3 -c <this file> family|tag VALUE`` (:func:`scan_argv`), so the scan
on a remote machine is this very code.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import signal
import sys
import time
from pathlib import Path

#: The environment variable every command of a native or ssh target carries.
NAME = "LEAPFROG_RUN"
#: How many times the scan runs at most: a process may fork while its parent is being killed.
PASSES = 5
#: Seconds one pass waits for the processes it killed to end before scanning again.
SETTLE = 1.0

_FAMILY = re.compile(r"[0-9a-f]{16}")
_TAG = re.compile(r"[0-9a-f]{16}\.[0-9a-f]{16}")
_TAIL = re.compile(rb"[0-9a-f]{16}")


def new_family() -> str:
    """A fresh random family: what one target object's commands carry."""
    return secrets.token_hex(8)


def command_tag(family: str) -> str:
    """A fresh tag for one command of ``family``."""
    return f"{family}.{secrets.token_hex(8)}"


def is_family(value: object) -> bool:
    return isinstance(value, str) and _FAMILY.fullmatch(value) is not None


def is_tag(value: object) -> bool:
    return isinstance(value, str) and _TAG.fullmatch(value) is not None


class Family:
    """One target object's family: the value its commands carry, and whether its ``stop()`` kills what they left.

    A view (a target ``attach()``ed from a handle that names a family) carries
    the owner's family and kills nothing: the owner's ``stop()`` ends what the
    view's commands left running.
    """

    def __init__(self, value: str | None = None, *, owned: bool = True) -> None:
        self.value = value or new_family()
        self.owned = owned

    def tag(self) -> str:
        """A fresh tag for one command."""
        return command_tag(self.value)

    def handle(self) -> dict[str, str]:
        """What a target's ``handle()`` passes on, for :meth:`of_handle` in another process."""
        return {"run": self.value}

    @classmethod
    def of_handle(cls, handle: dict[str, object]) -> Family:
        """The owner's family, not owned, when ``handle`` names a valid one; else a fresh family of its own."""
        value = handle.get("run")
        return cls(value, owned=False) if isinstance(value, str) and is_family(value) else cls()


def carries(environ: bytes, mode: str, value: str) -> bool:
    """Whether a NUL-separated ``environ`` holds an entry ``LEAPFROG_RUN=...`` that ``value`` names.

    ``mode`` "tag": the entry is exactly ``LEAPFROG_RUN=<value>``; "family":
    it is ``LEAPFROG_RUN=<value>.<16 hex digits>``.  The entry must be whole:
    the text as a part of another variable, or followed by more, is not ours.
    """
    want = f"{NAME}={value}".encode()
    prefix = want + b"."
    for entry in environ.split(b"\0"):
        if mode == "tag" and entry == want:
            return True
        if mode == "family" and entry.startswith(prefix) and _TAIL.fullmatch(entry[len(prefix) :]):
            return True
    return False


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read()
    except OSError:  # gone, a kernel thread, or not ours to read
        return b""


def _pinned(pid: int) -> int | None:
    """A pidfd for ``pid`` (so the signal cannot reach a later process that reuses the number), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # an older kernel or Python; or the process is gone
        return None


def kill(mode: str, value: str, *, passes: int = PASSES, settle: float = SETTLE) -> int:
    """SIGKILL every process (but this one) whose environment carries ``value`` (see :func:`carries`).

    Scans ``/proc`` until a pass finds none, at most ``passes`` times; returns
    how many processes were signalled.  Each match is pinned with a pidfd and
    its environment read again before the signal, so a number reused after the
    first read is never hit.  Entries that cannot be read are skipped.
    """
    if not (is_tag(value) if mode == "tag" else mode == "family" and is_family(value)):
        raise ValueError(f"kill: {mode!r} {value!r} is not a {NAME} family or tag.")
    me = os.getpid()
    killed = 0
    for _ in range(passes):
        found = 0
        hit: list[int] = []
        try:
            pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
        except OSError:
            return killed
        for pid in pids:
            if pid == me or not carries(_environ(pid), mode, value):
                continue
            fd = _pinned(pid)
            if fd is not None and not carries(_environ(pid), mode, value):  # not the process read above
                os.close(fd)
                continue
            try:
                if fd is None:
                    os.kill(pid, signal.SIGKILL)
                else:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:  # ended meanwhile
                if fd is not None:
                    os.close(fd)
                continue
            found += 1
            if fd is not None:
                hit.append(fd)
        killed += found
        _settle(hit, settle)
        if not found:
            break
        if not hit:  # no pidfds to wait on
            time.sleep(0.05)
    return killed


def _settle(fds: list[int], settle: float) -> None:
    """Wait (at most ``settle`` seconds) for the pinned processes to end, then close their pidfds."""
    deadline = time.monotonic() + settle
    try:
        for fd in fds:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll(max(deadline - time.monotonic(), 0.0) * 1000)
    finally:
        for fd in fds:
            os.close(fd)


def scan_argv(python: str, mode: str, value: str) -> list[str]:
    """The command that runs :func:`kill` on a target with ``python`` (this file as its ``-c`` program)."""
    return [python, "-c", Path(__file__).read_text(encoding="utf-8"), mode, value]


def main(args: list[str]) -> int:
    if len(args) != 2 or args[0] not in ("family", "tag"):
        print("usage: python3 -c <leftovers.py> family|tag VALUE", file=sys.stderr)
        return 2
    try:
        print(kill(args[0], args[1]))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
