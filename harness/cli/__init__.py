"""The ``leapfrog`` command.  Commands parse options and call plain functions (:mod:`harness.workflow`).

Exit codes (stable, documented in the README):
0  every cell ran and nothing failed
1  a failure whose triage class is in --fail-on (default: every class but everywhere
   and infra), a flaky case, or a cell that ran no case; known issues never count
2  usage, configuration or infrastructure error (including infra-error cells)
130 interrupted (Ctrl-C); results so far are on disk and the report is rendered

Each command imports what it uses when it runs: ``leapfrog --help`` and
``leapfrog list`` load neither Jinja, the report, paramiko nor docker.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harness import __version__
from harness.cli._common import Ctx, console
from harness.cli.cmd_host import deps_cmd, doctor, golden, images, list_cmd
from harness.cli.cmd_results import compare, history_cmd, merge, report, repro
from harness.cli.cmd_run import run
from harness.errors import LeapfrogError
from harness.signals import sigterm_as_ctrl_c
from harness.workflow import EXIT_ERROR, EXIT_INTERRUPTED

__all__ = ["main", "run"]


class Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        """Every command: a LeapfrogError is one line and exit 2; SIGTERM is handled like Ctrl-C (exit 130).

        The one place a signal is turned into an interrupt for all commands
        (``run``, ``images build``, ``images fetch``, ``golden``, ...), so their
        cleanup (stop targets, unmount, remove half-built images) runs.
        """
        try:
            with sigterm_as_ctrl_c():
                return super().invoke(ctx)
        except LeapfrogError as e:
            console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted:[/] stopped and cleaned up.", markup=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="leapfrog")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), help="Folder with targets/ and suites/.")
@click.option("--targets-dir", type=click.Path(file_okay=False, path_type=Path), help="Where target TOML files are.")
@click.option("--suites-dir", type=click.Path(file_okay=False, path_type=Path), help="Where suite folders are.")
@click.pass_context
def main(ctx: click.Context, root: Path | None, targets_dir: Path | None, suites_dir: Path | None) -> None:
    """leapfrog: run Python AI-serving suites on emulated RISC-V and openEuler targets."""
    ctx.obj = Ctx(root, targets_dir, suites_dir)


for _command in (list_cmd, doctor, run, report, merge, history_cmd, compare, repro, golden, deps_cmd, images):
    main.add_command(_command)
