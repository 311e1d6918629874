"""Run a local process in its own session, bound its output, kill its whole tree."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from harness.targets.base import OUTPUT_LIMIT, Completed

TRUNCATED = "\n[... output truncated by leapfrog: {n} bytes dropped ...]\n"
#: Set once a command has started and leapfrog's own process waits for it: the host's core is idle from
#: then on, and work that can be done ahead (loading the report, :func:`harness.workflow.warm_report`) may start.
WAITING = threading.Event()


class BoundedBuffer:
    """Keeps the first ``limit`` bytes written and counts the rest."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0

    def write(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        out = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            out += TRUNCATED.format(n=self.dropped)
        return out


class BoundedReader(threading.Thread):
    """Drain a pipe into a BoundedBuffer (the whole output is read; the first ``limit`` bytes kept)."""

    def __init__(self, stream: IO[bytes], limit: int = OUTPUT_LIMIT) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.buffer = BoundedBuffer(limit)

    def run(self) -> None:
        while True:
            chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
            if not chunk:
                break
            self.buffer.write(chunk)
        self.stream.close()

    def text(self) -> str:
        return self.buffer.text()


def wait_prompt(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """``proc.wait(timeout)`` that notices the end at once (raises :class:`subprocess.TimeoutExpired` the same way).

    ``Popen.wait`` with a timeout polls with sleeps of up to 50 ms, so each
    command's end was seen up to 50 ms late.  Here a pidfd (Linux >= 5.3)
    wakes the wait when the process ends; where there is none, it falls back
    to ``Popen.wait``.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # an older kernel or Python, or a pid already reaped
        proc.wait(timeout=timeout)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while not poller.poll(min(max(deadline - time.monotonic(), 0.0), 86400.0) * 1000):
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    proc.wait()  # it has ended: this reaps it without sleeping


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run_process(
    argv: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    reported_argv: list[str] | None = None,
    on_timeout: Callable[[], None] | None = None,
) -> Completed:
    """Run ``argv`` in a new session; on timeout kill the session's process group.

    ``on_timeout`` lets a backend kill what escaped the group (for example
    every process whose root is its chroot).
    """
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    readers = [BoundedReader(proc.stdout), BoundedReader(proc.stderr)]
    for r in readers:
        r.start()
    WAITING.set()
    timed_out = False
    try:
        wait_prompt(proc, timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_group(proc.pid)
        if on_timeout:
            on_timeout()
        proc.wait()
    except BaseException:  # Ctrl-C: leave nothing running, then let it rise
        kill_group(proc.pid)
        if on_timeout:
            on_timeout()
        proc.wait()
        raise
    # Children that outlived the leader still hold the pipes: end them too.
    kill_group(proc.pid)
    for r in readers:
        r.join(timeout=5)
    rc = proc.returncode
    sig = -rc if rc is not None and rc < 0 else None
    return Completed(
        argv=reported_argv or argv,
        exit_code=None if (timed_out or sig) else rc,
        signal=sig,
        stdout=readers[0].text(),
        stderr=readers[1].text(),
        wall=time.monotonic() - start,
        timed_out=timed_out,
    )
