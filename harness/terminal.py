"""A terminal attached to a started target: a command's output unbounded, as it comes (``leapfrog repro``).

Each kind is reached its own way: the host directly, a chroot with
``chroot``, a container with ``docker exec``, ssh and qemu-vm targets with an
SSH channel (a pty when stdin is a terminal).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
from typing import Any

from harness.errors import TargetError
from harness.targets import Target


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def attached(target: Target, argv: list[str], *, env: dict[str, str], cwd: str, interactive: bool) -> int:
    """Run ``argv`` in the started ``target`` with this process's terminal: output unbounded, as it comes.

    ``interactive``: stdin is passed on (a pipe or the terminal; a terminal gets
    a pty on the far side too); else the command reads nothing.  Returns the
    exit status (128 + N when signal N ended it).
    """
    stdin = None if interactive else subprocess.DEVNULL
    tty = interactive and sys.stdin.isatty()
    kind = target.kind
    if kind == "native":
        from harness.targets.native import NativeTarget

        assert isinstance(target, NativeTarget)
        if argv and argv[0] == target.config.python:
            argv = [target.python, *argv[1:]]
        full = {**os.environ, **target.config.env, **env}
        return _exit_status(subprocess.run(argv, env=full, cwd=cwd, stdin=stdin, check=False).returncode)
    if kind == "chroot":
        from harness.targets.chroot import ChrootTarget

        assert isinstance(target, ChrootTarget)
        root = target.root
        if root is None:
            raise TargetError(f"target {target.name}: not started.")
        inner = ["chroot", str(root), "/usr/bin/env", "-C", cwd, *argv]
        return _exit_status(subprocess.run(inner, env=target.env(env), stdin=stdin, check=False).returncode)
    if kind == "docker":
        from harness.targets.docker import DockerTarget

        assert isinstance(target, DockerTarget)
        docker = shutil.which("docker")
        if docker is None or target.container_id is None:
            raise TargetError(
                f"target {target.name}: `docker exec` needs the docker command line (apt-get install docker.io)."
            )
        host = ["-H", target.options.docker_host] if target.options.docker_host else []
        flags = ["-i", *(["-t"] if tty else [])] if interactive else []
        extra = [f"-e{k}={v}" for k, v in env.items()]
        cmd = [docker, *host, "exec", *flags, "-w", cwd, *extra, target.container_id, *argv]
        return _exit_status(subprocess.run(cmd, stdin=stdin, check=False).returncode)
    if kind in ("ssh", "qemu-vm"):
        return _ssh_attached(target, argv, env=env, cwd=cwd, interactive=interactive, tty=tty)
    raise TargetError(f'target {target.name}: leapfrog repro cannot attach a terminal to kind "{kind}".')


def _session(target: Target) -> Any:
    from harness.targets.ssh_base import SshBackedTarget

    if isinstance(target, SshBackedTarget):
        return target.ssh_session()
    raise TargetError(f"target {target.name}: no SSH session.")


def ssh_command(argv: list[str], *, env: dict[str, str], cwd: str) -> str:
    """``cd -- CWD && exec env -- K=V ... ARGV`` (the server's AcceptEnv is not relied on)."""
    from harness.targets.ssh_command import build_command

    full = build_command(argv, env=env, cwd=cwd)
    return full.split(" && ", 1)[1]  # without the process-group marker: nothing to kill, the user watches


def _ssh_attached(
    target: Target, argv: list[str], *, env: dict[str, str], cwd: str, interactive: bool, tty: bool
) -> int:
    """An SSH channel (with a pty when stdin is a terminal) joined to stdin, stdout and stderr."""
    env = {**target.config.env, **env}
    session = _session(target)
    chan = session._open_session()
    if tty:
        size = shutil.get_terminal_size()
        chan.get_pty(term=os.environ.get("TERM", "xterm"), width=size.columns, height=size.lines)
    chan.exec_command(ssh_command(argv, env=env, cwd=cwd))
    stdin_fd = sys.stdin.fileno() if interactive else None
    if stdin_fd is None:
        chan.shutdown_write()
    out, err = sys.stdout.buffer, sys.stderr.buffer
    saved = None
    if tty and stdin_fd is not None:
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(stdin_fd)
        ttymod.setraw(stdin_fd)
    try:
        while True:
            watch: list[Any] = [chan] + ([stdin_fd] if stdin_fd is not None else [])
            ready, _, _ = select.select(watch, [], [], 0.5)
            if chan in ready or chan.recv_ready() or chan.recv_stderr_ready():
                while chan.recv_ready():
                    out.write(chan.recv(65536))
                while chan.recv_stderr_ready():
                    err.write(chan.recv_stderr(65536))
                out.flush()
                err.flush()
            if stdin_fd is not None and stdin_fd in ready:
                data = os.read(stdin_fd, 65536)
                if data:
                    chan.sendall(data)
                else:
                    chan.shutdown_write()
                    stdin_fd = None
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
        return int(chan.recv_exit_status())
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        chan.close()
