"""What every target reached over SSH does the same way: run, put, get, forward and facts.

A subclass says how it gets its :class:`~harness.targets.ssh_session.SshSession`
(:meth:`SshBackedTarget.ssh_session`) and keeps only its lifecycle: start,
stop, handle and attach.  The ``ssh`` backend connects to a machine it does
not manage; the ``qemu-vm`` backend boots one first.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

from harness.targets._common import GET_LIMIT
from harness.targets.base import Completed, Target, probe_facts

if TYPE_CHECKING:
    from pathlib import Path

    from harness.model import TargetFacts
    from harness.targets.ssh_session import SshSession


class SshBackedTarget(Target):
    """A target whose commands, files and ports all go through one SSH session."""

    @abc.abstractmethod
    def ssh_session(self) -> SshSession:
        """The session to the running machine; a :class:`TargetError` when there is none."""

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        return self.ssh_session().run(argv, timeout=timeout, env={**self.config.env, **(env or {})}, cwd=cwd)

    def put(self, local: Path, remote: str) -> None:
        self.ssh_session().put(local, remote)

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        self.ssh_session().get(remote, local, limit=limit)

    def forward(self, port: int) -> tuple[str, int]:
        return self.ssh_session().forward(port)

    def facts(self) -> TargetFacts:
        return probe_facts(self)
