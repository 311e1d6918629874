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
is killed over a second channel.  Files move over SFTP.

This module is the target's lifecycle only; the connection and what runs over
it are :class:`~harness.targets.ssh_session.SshSession`, which the ``qemu-vm``
backend uses too (both through :class:`~harness.targets.ssh_base.SshBackedTarget`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.kinds import SshOptions
from harness.targets.ssh_base import SshBackedTarget
from harness.targets.ssh_session import SshSession

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.config import TargetConfig


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

    def handle(self) -> dict[str, Any]:
        # The file says how to log in; connecting here first means a host key
        # accepted on first use is in known_hosts before another process checks it.
        self.session.connect()
        return {}

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> SshTarget:
        """Its own SSH connection to the same machine; ``stop()`` closes just that."""
        target = cls(config)
        target.session.connect()
        return target

    def stop(self) -> None:
        self.session.close()
