"""What the chroot and docker backends share: a Linux userland run through qemu-user on this host.

Both run commands in a root filesystem with the same environment, record the
same emulator facts, and clean up what a killed leapfrog left behind by asking
whether the process that made it is gone.  Standard library only at import (the
image writer in :mod:`harness.images` uses ``PATH`` too).
"""

from __future__ import annotations

import contextlib
import functools
import posixpath
import shutil
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.model import TargetFacts

#: The ``PATH`` of every command in a root filesystem, and of the images leapfrog makes.
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def command_env(cpu: str, configured: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command: the userland's defaults, ``QEMU_CPU``, the file's ``env``, then ``extra``."""
    env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
    if cpu:
        env["QEMU_CPU"] = cpu
    env.update(configured)
    env.update(extra or {})
    return env


def emulated_facts(facts: TargetFacts, cpu: str) -> TargetFacts:
    """Mark probed facts as qemu-user's, with the CPU model the target file asked for."""
    facts.emulation = "qemu-user"
    facts.cpu_model = cpu or "qemu-user default"
    return facts


def qemu_version(binary: str) -> tuple[str, str]:
    """(first ``--version`` line, version) of a qemu-user binary, asked once per process; ("", "") if it cannot run."""
    from harness import qemu_user
    from harness.errors import TargetError

    with contextlib.suppress(TargetError, subprocess.SubprocessError):
        line, version, _ = qemu_user.describe(binary)
        return line, version
    return "", ""


def warm_qemu_version(binary: str) -> threading.Thread:
    """Ask :func:`qemu_version` of ``binary`` in a background thread, so the facts at a cell's end find it cached.

    The thread asks once a command runs in the target and leapfrog's own
    process waits for it (:data:`harness.targets._proc.WAITING`): the host is
    idle then, where during the target's start the two native execs would
    compete with it.  Its failures are the ones :func:`qemu_version` already
    turns into ("", ""), and a failed answer is not cached: the later call
    asks again.
    """
    from harness.targets._proc import WAITING

    def work() -> None:
        WAITING.wait()
        qemu_version(binary)

    thread = threading.Thread(target=work, name="leapfrog-qemu-version", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- entering a root

#: Holds "wd" once the host's unshare refused ``--root``/``--wd`` (util-linux < 2.32): env -C from then on.
_REFUSED: set[str] = set()


@functools.lru_cache(maxsize=1)
def _which_unshare() -> str:
    return shutil.which("unshare") or ""


def unshare_with_wd() -> str:
    """The host's ``unshare``, unless it is missing or refused ``--root``/``--wd`` in this process ("")."""
    return "" if "wd" in _REFUSED else _which_unshare()


def unshare_refused(wd: str | None, exit_code: int | None, stdout: str, stderr: str) -> bool:
    """Whether an :func:`enter_argv` command failed because unshare lacks ``--root``/``--wd`` (the command never ran).

    Remembered for the process: :func:`enter_argv` then gives ``chroot`` and
    the root's ``env -C``, and the caller runs the command again that way.
    """
    refused = (
        wd is not None
        and exit_code == 1
        and not stdout
        and stderr.startswith(("unshare: unrecognized option '--root", "unshare: unrecognized option '--wd"))
    )
    if refused:
        _REFUSED.add("wd")
    return refused


def enter_argv(root: str, argv: list[str], cwd: str | None) -> tuple[list[str], str | None]:
    """The host command that runs ``argv`` chrooted in ``root`` (in folder ``cwd`` there, relative to its /).

    With a ``cwd``, ``unshare --root=ROOT --wd=DIR`` (no namespace asked: it only
    chroots, changes folder and execs, in the one native process) replaces
    ``chroot ROOT /usr/bin/env -C DIR``, whose ``env`` was one more program
    start, emulated.  Returns the argv and the folder unshare changes to (None
    when it is not used): :func:`missing_wd` recognises its failure there.
    """
    if not cwd:
        return ["chroot", root, *argv], None
    unshare = unshare_with_wd()
    if not unshare:
        return ["chroot", root, "/usr/bin/env", "-C", cwd, *argv], None
    wd = posixpath.join("/", cwd)  # relative to the root's /, as env -C after chroot
    return [unshare, f"--root={root}", f"--wd={wd}", "--", *argv], wd


def missing_wd(wd: str, exit_code: int | None, stdout: str, stderr: str) -> bool:
    """Whether an :func:`enter_argv` command failed to change to ``wd`` (so the command never ran)."""
    return (
        exit_code == 1
        and not stdout
        and stderr.startswith(f"unshare: cannot chdir to '{wd}': ")
        and stderr.count("\n") == 1
        and stderr.endswith("\n")
    )


# --------------------------------------------------------------------------- leftovers of a killed leapfrog


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22), or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    fields = raw.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else None


def owner_gone(pid: int, started: str) -> bool:
    """True when process ``pid``, which started at ``started`` (see :func:`process_start`), is gone.

    Its pid is free, or now belongs to a process that started at another time.
    With no start time recorded, the pid alone decides.  A pid of 0 or less is
    never gone: nothing valid was recorded, so the leftover is left alone.
    """
    if pid <= 0:
        return False
    now = process_start(pid)
    if now is None:
        return True
    return bool(started) and started != now
