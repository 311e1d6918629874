"""Run an image build tool (mmdebstrap, apt-get) with a deadline; explain its failure by its own ``E:`` lines.

Both tools print their errors as lines starting with ``E:``, and the first of
them is the cause: "E: install arch-test for foreign architecture support" is
not a mirror problem.  :func:`run_logged` keeps every such line (and a tail of
the output), kills the tool's whole process group when the deadline passes,
and :func:`explain` turns the result into a message that names the cause and
the fix: the package to install (from :mod:`harness.hostreq`), the mirror to
check when the errors are about fetching, or the variable that sets the
deadline.

Deadlines (seconds; the defaults fit building a big image under emulation):

* ``LEAPFROG_BUILD_TIMEOUT``: one mmdebstrap run [3600]
* ``LEAPFROG_APT_TIMEOUT``: one apt-get run while layering packages onto a cached image [1800]

:class:`PhaseClock` turns the same output into the seconds each phase of a build
took (download, unpack, configure, byte-compile, initramfs), kept in the image's
``meta.json`` as ``phases``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable

from harness import hostreq
from harness.errors import ImageError

BUILD_TIMEOUT = ("LEAPFROG_BUILD_TIMEOUT", 3600.0)
APT_TIMEOUT = ("LEAPFROG_APT_TIMEOUT", 1800.0)
#: After SIGTERM, how long the tool may clean up (mmdebstrap unmounts what it mounted) before SIGKILL.
GRACE = 30.0
TAIL = 40
MAX_ERRORS = 20

_NETWORK = re.compile(
    r"Failed to fetch|Could not resolve|Temporary failure resolving|Could not connect|Connection failed|"
    r"Connection timed out|Unable to fetch|Unable to connect|does not have a Release file|Hash Sum mismatch|"
    r"NO_PUBKEY|404\s+Not Found|Network is unreachable",
    re.IGNORECASE,
)
_INSTALL = re.compile(r"\binstall ([a-z0-9][a-z0-9.+-]+)")


def deadline(setting: tuple[str, float]) -> float:
    """The deadline in seconds from the environment variable of ``setting``, else its default."""
    var, default = setting
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ImageError(f'environment variable {var} is "{raw}"; set it to a number of seconds above 0, or unset it.')
    return value


@dataclasses.dataclass
class Finished:
    """How a tool run ended."""

    argv: list[str]
    code: int
    tail: list[str]  # the last lines of output
    errors: list[str]  # every "E:" line, in order, each once
    timed_out: bool = False
    timeout: float = 0.0
    seconds: float = 0.0


def error_lines(lines: Iterable[str]) -> list[str]:
    """The ``E:`` lines of a tool's output, in order, each once (at most :data:`MAX_ERRORS`)."""
    out: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("E:") and text not in out:
            out.append(text)
            if len(out) == MAX_ERRORS:
                break
    return out


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_group(proc: subprocess.Popen[str], grace: float = GRACE) -> None:
    """SIGTERM ``proc``'s process group, then SIGKILL it if it is still there after ``grace`` seconds."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def run_logged(
    argv: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    grace: float = GRACE,
) -> Finished:
    """Run ``argv`` in its own session, output merged; stop its whole process group after ``timeout`` s.

    Every output line goes to ``on_line``.  Ctrl-C (or any exception) stops the
    group the same way before it propagates.
    """
    start = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL)
    errors: list[str] = []
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
        start_new_session=True,  # a process group of its own, killed as one
    )
    assert proc.stdout is not None
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        stop_group(proc, grace)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            tail.append(line)
            if line.startswith("E:") and line.strip() not in errors and len(errors) < MAX_ERRORS:
                errors.append(line.strip())
            if on_line is not None:
                on_line(line)
        code = proc.wait()
    except BaseException:
        timer.cancel()
        stop_group(proc, grace)
        raise
    finally:
        timer.cancel()
        proc.stdout.close()
    return Finished(
        argv=argv,
        code=code,
        tail=list(tail),
        errors=errors,
        timed_out=expired.is_set(),
        timeout=timeout,
        seconds=round(time.monotonic() - start, 1),
    )


def install_hint(errors: list[str]) -> str:
    """``apt-get install P`` when an error line asks to install a program or package the host table knows."""
    for line in errors:
        for name in _INSTALL.findall(line):
            req = hostreq.lookup(name) or next((r for r in hostreq.TABLE if r.package == name), None)
            if req is not None:
                return req.hint()
    return ""


def explain(tool: str, done: Finished, what: str, *, mirror: str = "", setting: tuple[str, float]) -> str:
    """A message for a failed ``done``: its ``E:`` lines as the cause, then the fix, then the last output."""
    last = "\n".join(done.tail)
    if done.timed_out:
        return (
            f"{tool} did not finish {what} within {done.timeout:g} s, so its whole process group was stopped; "
            f"if it is only slow, raise the deadline with the environment variable {setting[0]} (seconds). "
            f"Last output:\n{last}"
        )
    if not done.errors:
        return f"{tool} failed (exit {done.code}) {what} and printed no E: line. Last output:\n{last}"
    cause = "; ".join(e.removeprefix("E:").strip() for e in done.errors[:5])
    fix = ""
    hint = install_hint(done.errors)
    if hint:
        fix = f" Install what it asks for with: {hint} (or run scripts/setup-host.sh)."
    elif mirror and any(_NETWORK.search(e) for e in done.errors):
        fix = f" Check that the mirror {mirror} is reachable from this host."
    return f"{tool} failed (exit {done.code}) {what}: {cause}.{fix} Last output:\n{last}"


#: mmdebstrap's own stages, by their ``I:`` line; the stage "remaining" is split further by apt/dpkg lines.
_STAGES = [
    ("I: running apt-get update", "apt update"),
    ("I: downloading packages", "download (essential)"),
    ("I: extracting archives", "unpack (essential)"),
    ("I: installing essential packages", "configure (essential)"),
    ("I: running --essential-hook", "hooks"),
    ("I: installing remaining packages", "resolve"),
    ("I: running --customize-hook", "hooks"),
    ("I: leapfrog: fetching a native", "fetch native python"),
    ("I: leapfrog: byte-compiling", "byte-compile"),
    ("I: leapfrog: creating the initramfs", "initramfs"),
    ("I: cleaning package lists", "cleanup"),
    ("I: success", "done"),
]
#: Lines of apt and dpkg while the remaining packages go in.
_STEPS = [
    (re.compile(r"Get:\d+ "), "download"),
    (re.compile(r"(Selecting previously unselected|Preparing to unpack|Unpacking) "), "unpack"),
    (re.compile(r"Setting up (python3|libpython3|python3\.\d+)[-:. ]"), "configure python3 packages"),
    (re.compile(r"update-initramfs: Generating "), "initramfs"),
    (re.compile(r"Processing triggers for initramfs-tools "), "initramfs"),
    (re.compile(r"(Setting up|Processing triggers for) "), "configure"),
]


class PhaseClock:
    """Seconds per build phase, from the build tool's output lines as they come.

    A phase starts at the line that names it (an mmdebstrap ``I:`` stage line,
    or, for the packages after the essential ones, apt's ``Get:``, dpkg's
    ``Unpacking``/``Setting up`` lines) and lasts until the next phase starts.
    ``configure python3 packages`` is the configure time of ``python3*``
    packages: what their postinst does, mostly byte-compiling when that runs in
    the image.
    """

    def __init__(self, start: float) -> None:
        self.phase = "setup"
        self.since = start
        self.remaining = False
        self.seconds: dict[str, float] = {}

    def _switch(self, phase: str, now: float) -> None:
        if phase == self.phase:
            return
        self.seconds[self.phase] = self.seconds.get(self.phase, 0.0) + (now - self.since)
        self.phase, self.since = phase, now

    def feed(self, line: str, now: float) -> None:
        text = line.strip()
        for prefix, phase in _STAGES:
            if text.startswith(prefix):
                self.remaining = phase in ("resolve", "download", "unpack", "configure")
                self._switch(phase, now)
                return
        if self.remaining:
            for pat, phase in _STEPS:
                if pat.match(text):
                    self._switch(phase, now)
                    return

    def finish(self, now: float) -> dict[str, float]:
        """Every phase's seconds (rounded to 0.1), in the order they first ran; the clock stops at ``now``."""
        self._switch("done", now)
        return {k: round(v, 1) for k, v in self.seconds.items() if k != "done"}
