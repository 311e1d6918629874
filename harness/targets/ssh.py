"""A machine reached over SSH: a real RISC-V board, or any host with sshd.

Target file keys (besides the common ones)::

    kind = "ssh"
    host = "board.lan"             # required
    port = 22
    user = "root"
    key_file = "~/.ssh/id_ed25519" # default: ssh-agent and ~/.ssh/id_*
    password_env = "BOARD_PW"      # NAME of an environment variable holding the password
    known_hosts = ""               # default: ~/.ssh/known_hosts
    accept_new_host_key = false    # true: trust and save a key seen for the first time
    connect_timeout = 30.0         # TCP connect, SSH banner, login, opening a channel
    io_timeout = 120.0             # an answer to one request: exec, an SFTP read or write

Every wait has a deadline: connecting and logging in ``connect_timeout``; the
server's answer to an exec request, and each SFTP request, ``io_timeout`` (the
default fits a VM under TCG, where one request can take a minute); a command
its own ``timeout`` plus a short grace for the kill.  A machine that stops
answering is a :class:`TargetError` within those deadlines, never a hang.

Host keys are checked against ``known_hosts``; an unknown host is refused
unless ``accept_new_host_key`` is true, and a host whose key *changed* is
always refused.  Commands run as ``cd CWD && exec env K=V ARGV`` (the server's
``AcceptEnv`` is not relied on); on timeout the command's whole process group
is killed over a second channel, and with it every process that carries the
command's ``LEAPFROG_RUN`` tag (:mod:`harness.targets.leftovers`), also one
that left the group with ``setsid``.  ``stop()`` kills, with one
``python3 -c`` on the machine, every process a command of this target started
and left running (a server a failed test did not stop), found by that tag and
nothing else; a process that clears its environment (``env -i``) is not
found.  Files move over SFTP.

This module is the target's lifecycle only; the connection and what runs over
it are :class:`~harness.targets.ssh_session.SshSession`, which the ``qemu-vm``
backend uses too (both through :class:`~harness.targets.ssh_base.SshBackedTarget`).
"""

from __future__ import annotations

import logging
import shlex
from typing import TYPE_CHECKING, Any

from harness.errors import TargetError
from harness.kinds import SshOptions
from harness.targets import leftovers
from harness.targets.ssh_base import SshBackedTarget
from harness.targets.ssh_session import SshSession

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.config import TargetConfig
    from harness.targets.base import Completed

log = logging.getLogger(__name__)


class SshTarget(SshBackedTarget):
    """A machine leapfrog reaches over SSH and does not manage (a board, a server)."""

    kind = "ssh"
    emulation = "board"

    Options = SshOptions

    def __init__(
        self,
        config: TargetConfig,
        *,
        packages: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config, packages=packages, progress=progress)
        self.session = SshSession(self.options, target_name=self.name)
        self.session.python = config.python
        #: What this target's commands carry in ``LEAPFROG_RUN``; ``stop()`` kills what still carries it.
        self.family = leftovers.Family()

    @property
    def options(self) -> SshOptions:
        opts: SshOptions = self.config.options
        return opts

    def __repr__(self) -> str:
        return f"<SshTarget {self.name!r} {self.session!r}>"

    def ssh_session(self) -> SshSession:
        return self.session

    def start(self) -> None:
        self.session.connect()

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        tagged = {**(env or {}), leftovers.NAME: self.family.tag()}
        return super().run(argv, timeout=timeout, env=tagged, cwd=cwd)

    def handle(self) -> dict[str, Any]:
        # The file says how to log in; connecting here first means a host key
        # accepted on first use is in known_hosts before another process checks it.
        self.session.connect()
        return self.family.handle()

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> SshTarget:
        """Its own SSH connection to the same machine; ``stop()`` closes just that.

        Its commands carry the owner's family, so the owner's ``stop()`` ends
        what they leave running (a server a host-driven test started).
        """
        target = cls(config)
        target.family = leftovers.Family.of_handle(handle)
        target.session.connect()
        return target

    def stop(self) -> None:
        """Kill what this target's commands left running (not for a view, nor with the connection gone); close it."""
        if self.family.owned and self.session.connected:
            self._kill_leftovers()
        self.session.close()

    def _kill_leftovers(self) -> None:
        """One ``python3 -c`` on the machine, bounded by ``io_timeout``; a failure is a warning, never an error."""
        argv = leftovers.scan_argv(self.config.python, "family", self.family.value)
        try:
            done = self.session.run(argv, timeout=self.options.io_timeout)
        except TargetError as e:
            said = str(e).replace(repr(shlex.join(argv)), f"'{self.config.python} -c <leftovers.py> family ...'")
            log.warning("%s: could not kill what the commands left running: %s", self.session.where, said)
            return
        if not done.ok:
            log.warning(
                "%s: could not kill what the commands left running: %s exited with %s: %r",  # %r: escaped
                self.session.where,
                self.config.python,
                "a timeout" if done.timed_out else done.exit_code,
                done.stderr.strip()[-500:],
            )
