"""What code below the targets needs of a started target: its name and one ``run()``.

Image provisioning (:func:`harness.images.openeuler.provision`) runs commands
in a started target, but images sit below targets and never import them.  It
takes anything shaped like :class:`Runs` instead: every
:class:`harness.targets.base.Target` is one, and so is a test's fake.
"""

from __future__ import annotations

from typing import Protocol


class Ran(Protocol):
    """The outcome of one command, as :class:`harness.targets.base.Completed` gives it."""

    @property
    def exit_code(self) -> int | None: ...  # None when killed by a signal or timed out

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...

    @property
    def ok(self) -> bool: ...


class Runs(Protocol):
    """A started target, as far as running one command in it goes."""

    @property
    def name(self) -> str: ...

    def run(self, argv: list[str], *, timeout: float) -> Ran:
        """Run ``argv`` inside the target; kill its whole process tree on timeout."""
        ...
