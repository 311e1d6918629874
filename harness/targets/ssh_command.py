"""The one shell string a command runs as over SSH, and the marker that tells its process group.

Commands run as ``cd CWD && exec env K=V ARGV`` (the server's ``AcceptEnv`` is
not relied on), after a first line that prints the shell's PID: sshd makes
each session a process group of its own, so on timeout that whole group is
killed over a second channel (:func:`kill_command`), and with it every
process that carries the command's ``LEAPFROG_RUN`` tag
(:mod:`harness.targets.leftovers`): what left the group with ``setsid``.  :class:`MarkerFilter`
takes the marker line back out of the command's stdout.
"""

from __future__ import annotations

import shlex

from harness.errors import ConfigError
from harness.kinds import ENV_NAME
from harness.targets import leftovers
from harness.targets._proc import BoundedBuffer

#: First line the remote shell prints: the process group to kill on timeout.
PGID_MARKER = b"leapfrog-pgid:"
#: How much stdout may precede the marker (login-shell noise) before we give up on it.
_MARKER_SEARCH_LIMIT = 64 * 1024


def build_command(argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """The one shell string sent over SSH for ``argv``.

    It prints the shell's PID (the process group sshd gave the session) as a
    marker line, changes to ``cwd``, and ``exec``s ``argv`` under ``env``, so
    the command keeps that process group and a timeout can kill all of it.
    """
    if not argv:
        raise ValueError("argv must name a program to run; it is empty.")
    steps = [f"printf '{PGID_MARKER.decode()}%s\\n' \"$$\""]
    if cwd:
        steps.append(f"cd -- {shlex.quote(cwd)}")
    assignments = []
    for key, value in (env or {}).items():
        if not ENV_NAME.match(key):
            raise ConfigError(f'environment variable name "{key}" is not valid; use letters, digits and "_" only.')
        assignments.append(shlex.quote(f"{key}={value}"))
    runner = ["env", "--", *assignments] if assignments else []
    steps.append("exec " + " ".join([*runner, shlex.join(argv)]))
    return " && ".join(steps)


def kill_command(pgid: int, tag: str | None = None, python: str = "python3") -> str:
    """Kill the process group ``pgid`` (and its leader, should the group be gone).

    With ``tag`` (the command's ``LEAPFROG_RUN`` value), then also every
    process that carries exactly that tag, with ``python`` (the target's) on the machine.
    """
    steps = [f"kill -s KILL -- -{pgid} 2>/dev/null", f"kill -s KILL -- {pgid} 2>/dev/null"]
    if tag is not None:
        if not leftovers.is_tag(tag):
            raise ValueError(f"kill_command: {tag!r} is not a {leftovers.NAME} tag.")
        steps.append(shlex.join(leftovers.scan_argv(python, "tag", tag)) + " >/dev/null 2>&1")
    return "; ".join([*steps, "true"])


def tag_of(env: dict[str, str] | None) -> str | None:
    """The command's ``LEAPFROG_RUN`` tag in ``env``, when it holds a valid one."""
    value = (env or {}).get(leftovers.NAME)
    return value if leftovers.is_tag(value) else None


class MarkerFilter:
    """Takes the PGID marker line out of the start of stdout."""

    def __init__(self, sink: BoundedBuffer) -> None:
        self.sink = sink
        self.pending = bytearray()
        self.pgid: int | None = None
        self.searching = True

    def write(self, chunk: bytes) -> None:
        if not self.searching:
            self.sink.write(chunk)
            return
        self.pending += chunk
        start = self.pending.find(PGID_MARKER)
        if start >= 0:
            end = self.pending.find(b"\n", start)
            if end < 0:
                return
            value = self.pending[start + len(PGID_MARKER) : end].strip()
            if value.isdigit():
                self.pgid = int(value)
            rest = self.pending[:start] + self.pending[end + 1 :]
            self.searching = False
            self.pending = bytearray()
            self.sink.write(bytes(rest))
        elif len(self.pending) > _MARKER_SEARCH_LIMIT:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.sink.write(bytes(self.pending))
            self.pending = bytearray()
        self.searching = False
