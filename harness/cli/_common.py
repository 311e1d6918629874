"""What every command module shares: the two consoles, the lazily loaded project, comma lists."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from harness.errors import LeapfrogError

if TYPE_CHECKING:
    from harness.config import Project

# emoji=False: ":six:" in a suite name ("project:six") or in a target's text is printed as written.
console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
out = Console(highlight=False, soft_wrap=True, emoji=False)

#: ``--fail-on`` of ``run`` and ``merge``: one option, one rule (harness.workflow.fail_classes and exit_code).
fail_on_option = click.option(
    "--fail-on",
    "fail_on",
    metavar="CLASSES",
    help="Triage classes that make the exit code 1 (comma list, or all) "
    "[slow,emulator-suspect,target-only,unknown,baseline-only: all but everywhere and infra].",
)


def split(values: tuple[str, ...]) -> list[str]:
    """Names from repeated options that may each be a comma list: ``-t a,b -t c`` is a, b, c."""
    names: list[str] = []
    for v in values:
        names.extend(x.strip() for x in v.split(",") if x.strip())
    return names


class Ctx:
    """The global options; the project (targets and suites) is loaded on first use."""

    def __init__(self, root: Path | None, targets_dir: Path | None, suites_dir: Path | None) -> None:
        self.root, self.targets_dir, self.suites_dir = root, targets_dir, suites_dir
        self._project: Project | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            from harness.config import load_project

            self._project = load_project(self.root, targets_dir=self.targets_dir, suites_dir=self.suites_dir)
        return self._project

    def try_project(self) -> Project | None:
        """The project if it loads (a report folder can be rendered without one)."""
        try:
            return self.project
        except LeapfrogError:
            return None
