"""Commands on finished runs: ``report``, ``merge``, ``history``, ``compare`` and ``repro``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harness.cli import show
from harness.cli._common import Ctx, console, fail_on_option, out
from harness.workflow import EXIT_FAIL, EXIT_OK


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_obj
def report(obj: Ctx, folder: Path) -> None:
    """Render JUnit XML and index.html again from FOLDER/results.json."""
    from harness import workflow as wf
    from harness.results import load_run

    run = load_run(folder)
    for path in wf.render(run, folder, settings=wf.settings(obj.try_project(), run)):
        out.print(str(path))


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Merged report."
)
@fail_on_option
@click.pass_obj
def merge(obj: Ctx, folders: tuple[Path, ...], out_dir: Path, fail_on: str | None) -> None:
    """Merge shard report folders into one report (as if run unsharded).

    The merged run is triaged again (a shard may not hold the baseline's cells)
    and its exit code follows the same rule as `leapfrog run`, --fail-on included.
    """
    from harness import workflow as wf
    from harness.triage import counts_text, triage_counts

    fail_classes = wf.fail_classes(fail_on)
    merged = wf.merge(obj.try_project(), folders, out_dir)
    n = sum(len(c.cases) for c in merged.cells)
    out.print(f"merged {len(folders)} folder(s): {len(merged.cells)} cells, {n} cases -> {out_dir}")
    triaged = counts_text(triage_counts(merged))
    if triaged:
        out.print(f"triage: {triaged}", markup=False, highlight=False)
    sys.exit(wf.exit_code(merged, fail_classes))


@click.command("history")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="History database [user data dir].")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
def history_cmd(db: Path | None, limit: int) -> None:
    """List recorded runs, newest last, with pass counts per target."""
    from harness import history, paths

    rows = history.summaries(db=db, limit=limit)
    if not rows:
        out.print(f"no runs recorded in {db or paths.default_db()}")
    for r in rows:
        per = "  ".join(f"{t} {p}/{n}" for t, (p, n, _s) in sorted(r.per_target.items()))
        out.print(f"{r.run_id:28} {r.started:26} {per}", markup=False, highlight=False)


@click.command()
@click.argument("base")
@click.argument("new")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="History database [user data dir].")
@click.option(
    "--threshold",
    type=click.FloatRange(min=1.01),
    default=1.5,
    show_default=True,
    help="A case or timing metric this many times slower (a rate this many times lower) is a change.",
)
@click.option(
    "--min-change",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    metavar="SECONDS",
    help="A slower case, or single timing metric (*_ms, *_s), is a regression only past this many seconds.",
)
@click.option(
    "--min-median-change",
    type=click.FloatRange(min=0),
    default=0.001,
    show_default=True,
    metavar="SECONDS",
    help="The same floor for a median over repeats (a *median* metric with its *p90* beside it).",
)
@click.option(
    "--history",
    "history_runs",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    metavar="N",
    help="A regression must exceed the spread of the last N recorded runs of the same target and suite.",
)
@click.option(
    "--min-history",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    metavar="N",
    help="Earlier runs a rate (*_per_s, qps) needs before it can be a regression: it has no absolute floor.",
)
@click.option(
    "--show-noise", is_flag=True, help=f"List every change within the noise (default: the first {show.NOISE_SHOWN})."
)
def compare(
    base: str,
    new: str,
    db: Path | None,
    threshold: float,
    min_change: float,
    min_median_change: float,
    history_runs: int,
    min_history: int,
    show_noise: bool,
) -> None:
    """Compare two runs (run ids from `leapfrog history`, or report folders).

    Exit 1 when NEW has new failures, worse cell verdicts, or slower cases or
    metrics against BASE. A slower case must be --threshold times slower, by at
    least --min-change seconds, and by more than the spread (max - min) of that
    case over the last --history runs in the history database (or, for a median
    metric, than its p90 - median); otherwise it is listed as noise, with the
    test that decided.
    """
    from harness import history
    from harness import workflow as wf

    rules = history.Rules(
        threshold=threshold,
        min_change=min_change,
        min_median_change=min_median_change,
        min_history=min_history,
        history=history_runs,
    )
    comparison = wf.compare_runs(base, new, db=db, rules=rules)
    show.changes(comparison, show_noise=show_noise)
    bad = history.regressions(comparison)
    noise = sum(c.kind == "noise" for c in comparison.changes)
    out.print(
        f"\n{len(bad)} regression(s): {sum(c.kind == 'new-failure' for c in bad)} new failure(s), "
        f"{sum(c.kind == 'verdict-worse' for c in bad)} worse verdict(s), "
        f"{sum(c.kind == 'slower' for c in bad)} slower; {noise} change(s) within the noise"
    )
    sys.exit(EXIT_FAIL if bad else EXIT_OK)


@click.command()
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False, path_type=Path))
@click.argument("case")
@click.option("--target", "-t", "target_name", help="The target the case ran on [the one where it failed].")
@click.option("--suite", "-s", "suite_name", help="The suite of the case, when several hold that name.")
@click.option("--shell", is_flag=True, help="Open a shell in the target at the suite's folder instead.")
@click.option("--case-timeout", type=click.FloatRange(min=1), help="Seconds for the case [as in the run].")
@click.pass_obj
def repro(
    obj: Ctx,
    run_dir: Path,
    case: str,
    target_name: str | None,
    suite_name: str | None,
    shell: bool,
    case_timeout: float | None,
) -> None:
    """Run CASE of the report in RUN_DIR again, where it ran, with its whole output.

    The target starts as in the run (its target file, the run's suites, the
    image recorded in results.json); pytest runs only CASE, its output
    streamed without a size bound; the target is stopped afterwards, also on
    Ctrl-C.  The last line is the command that does it again.  --shell opens
    an interactive shell there instead (stdin may be a pipe).

    Exit 0 when the case passes now, 1 when it fails, 2 when it cannot run.
    """
    from harness import repro as rp
    from harness.config import load_project

    run = rp.load_results(run_dir)
    where = str(run_dir / "results.json")
    pick = rp.pick_case(run, case, target=target_name, suite=suite_name, where=where)
    given = {"root": obj.root, "targets_dir": obj.targets_dir, "suites_dir": obj.suites_dir}
    dirs = rp.project_dirs(run, given, where)
    project = load_project(dirs["root"], targets_dir=dirs["targets_dir"], suites_dir=dirs["suites_dir"])
    timeout = case_timeout or rp.recorded_case_timeout(run, pick)
    result = rp.reproduce(
        project,
        run,
        pick,
        shell=shell,
        case_timeout=timeout,
        say=lambda m: console.print(f"  {show.printable(m)}", markup=False, highlight=False),
    )
    console.print(f"repro: {result.message} on {pick.target}", markup=False, highlight=False)
    options = [
        word
        for flag, value in (("--root", obj.root), ("--targets-dir", obj.targets_dir), ("--suites-dir", obj.suites_dir))
        if value is not None
        for word in (flag, str(value.resolve()))
    ]
    again = rp.repro_command(
        run_dir.resolve(), pick.target, pick.suite, pick.case, shell=shell, case_timeout=case_timeout, options=options
    )
    out.print(f"again: {again}", markup=False, highlight=False)
    sys.exit(result.exit)
