"""native: the host itself, the baseline every report compares against.

The suite runs on the Python that runs leapfrog unless the target file says
``python = "..."``.  Example ``targets/native.toml``::

    kind = "native"
    description = "The host (baseline)"

Every command gets ``LEAPFROG_RUN=<tag>`` in its environment
(:mod:`harness.targets.leftovers`); ``stop()`` kills whatever a command
started and left running (a server a failed test did not stop, a daemon that
called ``setsid``), found by that tag, and nothing else.  A process that
clears its environment (``env -i``) is not found.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import TargetError
from harness.kinds import NativeOptions
from harness.model import TargetFacts
from harness.targets import leftovers
from harness.targets._common import GET_LIMIT, copy_out
from harness.targets._proc import run_process
from harness.targets.base import Completed, Target

if TYPE_CHECKING:
    from collections.abc import Callable

    from harness.config import TargetConfig


class NativeTarget(Target):
    kind: ClassVar[str] = "native"
    emulation: ClassVar[str] = "native"
    facts_from_probe: ClassVar[bool] = True

    Options = NativeOptions

    def __init__(
        self,
        config: TargetConfig,
        *,
        packages: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config, packages=packages, progress=progress)
        #: What this target's commands carry in ``LEAPFROG_RUN``; ``stop()`` kills what still carries it.
        self.family = leftovers.Family()

    def start(self) -> None:
        pass

    @property
    def python(self) -> str:
        return sys.executable if self.config.python == "python3" else self.config.python

    def _argv(self, argv: list[str]) -> list[str]:
        if argv and argv[0] == self.config.python:
            return [self.python, *argv[1:]]
        return argv

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        tag = self.family.tag()
        full_env = {**os.environ, **self.config.env, **(env or {}), leftovers.NAME: tag}
        try:
            return run_process(
                self._argv(argv),
                timeout=timeout,
                env=full_env,
                cwd=cwd,
                reported_argv=argv,
                on_timeout=lambda: _ignore(leftovers.kill("tag", tag)),  # what left the process group too
            )
        except FileNotFoundError as e:
            if cwd is not None and not os.path.isdir(cwd):
                raise TargetError(f'native target: the working folder "{cwd}" does not exist on the host.') from e
            raise TargetError(f'native target: command "{argv[0]}" not found on the host.') from e

    def put(self, local: Path, remote: str) -> None:
        _copy(local, Path(remote))

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        """Like every backend (see ``Target.get``): a link, FIFO, socket or device at ``remote`` is refused,
        inside a folder they are skipped; at most ``limit`` bytes are copied."""
        src = Path(os.path.abspath(remote))
        try:
            parent = os.open(src.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise TargetError(f'native target: cannot copy "{remote}": {e.strerror or e}.') from e
        try:
            copy_out(parent, src.name, local, shown=remote, limit=limit)
        finally:
            os.close(parent)

    def local_path(self, remote: str) -> Path | None:
        return Path(remote)

    def forward(self, port: int) -> tuple[str, int]:
        return ("127.0.0.1", port)

    def enrich_facts(self, facts: TargetFacts) -> TargetFacts:
        facts.emulation = self.emulation
        facts.extra.setdefault("host", platform.node())
        return facts

    def stop(self) -> None:
        """Kill every process a command of this target started and left running (none for a view)."""
        if self.family.owned:
            leftovers.kill("family", self.family.value)

    def handle(self) -> dict[str, Any]:
        return self.family.handle()

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> NativeTarget:
        """A view whose commands carry the owner's family: the owner's ``stop()`` ends what they left running."""
        target = cls(config)
        target.family = leftovers.Family.of_handle(handle)
        return target


def _ignore(_: object) -> None:
    pass


def _copy(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
