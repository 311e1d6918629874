"""``leapfrog run``: parse the options, then :mod:`harness.workflow` does the run."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from harness import __version__
from harness.cli import show
from harness.cli._common import Ctx, console, fail_on_option, split


class CaseTimeout(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2, not in 8.1
    """``--case-timeout``: seconds (at least 1), or ``auto``."""

    name = "SECONDS|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float | str:
        if isinstance(value, float) or (isinstance(value, str) and value.strip().lower() == "auto"):
            return value if isinstance(value, float) else "auto"
        try:
            seconds = float(value)
        except ValueError:
            seconds = float("nan")
        if not seconds >= 1 or seconds == float("inf"):
            self.fail(f'"{value}" is neither a number of seconds of at least 1 nor "auto" (for example 300 or auto).')
        return seconds


class WorkerCount(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2, not in 8.1
    """``--workers``: pytest processes per cell, 1 to 64, or ``auto``."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or str(value).strip().lower() == "auto":
            return value if isinstance(value, int) else "auto"
        text = str(value).strip()
        if not text.isdigit() or not 1 <= int(text) <= 64:
            self.fail(f'"{value}" is neither a number of pytest processes from 1 to 64 nor "auto" (for example 2).')
        return int(text)


@click.command()
@click.option("--target", "-t", "targets", multiple=True, help="Target name (repeat or comma list).")
@click.option("--suite", "-s", "suites", multiple=True, help="Suite name (repeat or comma list).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), help="Report folder [reports/<time>].")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True, help="Targets run at once.")
@click.option(
    "--workers",
    type=WorkerCount(),
    help="pytest processes each in-target cell is split over in its target, or auto (the target's usable cores); "
    "overrides suite.toml's workers [suite.toml, else 1].",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=1,
    show_default=True,
    help="Extra attempts for an infra-error cell.",
)
@click.option(
    "--reruns",
    type=click.IntRange(0, 10),
    default=0,
    show_default=True,
    help="Run failed cases again this many times; a pass on re-run is reported as flaky.",
)
@click.option(
    "--retime-slow",
    type=click.IntRange(0, 10),
    default=0,
    show_default=True,
    metavar="N",
    help="Run passed cases slower than their history (as `leapfrog compare` judges) N more times; "
    "each keeps its fastest timing, so a stall of the host is not a regression.",
)
@click.option("--shard", help="Run slice K of N of the matrix, e.g. 1/3.")
@click.option(
    "--case-timeout",
    type=CaseTimeout(),
    help='Seconds per case (overrides suite.toml), or "auto": scaled from the baseline (see the README).',
)
@click.option(
    "--known-issues",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Known-issues TOML [known-issues.toml at the root, if present].",
)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="History database [user data dir].")
@click.option("--no-history", is_flag=True, help="Do not record this run in the history database.")
@click.option(
    "--resume",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Finish an interrupted run in this report folder (cells already finished are kept).",
)
@fail_on_option
@click.option(
    "--project",
    "projects",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Also run the pytest tests of this project folder or sdist on each target (repeat; see the README).",
)
@click.option("--extra", "extras", multiple=True, help="Install this extra of each --project too (repeat).")
@click.option("--group", "groups", multiple=True, help="Install this PEP 735 dependency group of --project (repeat).")
@click.option(
    "--build-in-target",
    is_flag=True,
    help="Build a --project's sdist-only dependencies (and the project, if compiled) in each target, "
    "with its toolchain added to the image; the time is reported.",
)
@click.pass_obj
def run(
    obj: Ctx,
    targets: tuple[str, ...],
    suites: tuple[str, ...],
    out: Path | None,
    jobs: int,
    workers: int | str | None,
    retries: int,
    reruns: int,
    retime_slow: int,
    shard: str | None,
    case_timeout: float | str | None,
    known_issues: Path | None,
    db: Path | None,
    no_history: bool,
    resume: Path | None,
    fail_on: str | None,
    projects: tuple[Path, ...],
    extras: tuple[str, ...],
    groups: tuple[str, ...],
    build_in_target: bool,
) -> None:
    """Run suites on targets and write results.json, JUnit XML and index.html."""
    from harness import workflow as wf

    fail_classes = wf.fail_classes(fail_on)
    p = obj.project
    request = wf.RunRequest(
        targets=split(targets),
        suites=split(suites),
        out=out,
        jobs=jobs,
        workers=workers,
        retries=retries,
        reruns=reruns,
        retime_slow=retime_slow,
        shard=shard,
        case_timeout=case_timeout,
        known_issues=known_issues,
        db=db,
        resume=resume,
        projects=projects,
        extras=extras,
        groups=groups,
        build_in_target=build_in_target,
        argv=["leapfrog", *sys.argv[1:]],
    )
    prepared = wf.prepare(p, request, warn=show.warn, progress=show.note)
    runner = wf.make_runner(prepared, emit=show.Progress().event)
    out_dir = prepared.options.out
    console.print(
        f"leapfrog {__version__}: {len(runner.plan.cells)} cell(s) on {len(runner.plan.targets())} target(s)"
        f"{' (resuming)' if prepared.options.previous else ''} -> {out_dir}",
        markup=False,
    )
    started = time.monotonic()
    result, interrupted = wf.execute(runner)
    if interrupted:
        console.print("[yellow]interrupted:[/] targets stopped; rendering what finished.", markup=True)
    try:
        done = wf.finish(p, result, out_dir, db=db, record=not no_history and not interrupted, warn=show.warn)
        show.summary(result, time.monotonic() - started)
        if done.comparison:
            show.changes(done.comparison)
        console.print(f"report: {out_dir / 'index.html'}  ({len(done.written)} files + results.json)", markup=False)
        if done.report_error is not None:
            raise done.report_error
    except KeyboardInterrupt:
        console.print(f"interrupted while writing the report; results.json in {out_dir} is complete up to here.")
        interrupted = True
    if interrupted:
        console.print(f"resume with: leapfrog run --resume {out_dir}", markup=False)
    sys.exit(wf.EXIT_INTERRUPTED if interrupted else wf.exit_code(result, fail_classes))
