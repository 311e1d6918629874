"""The ``leapfrog`` command.  Commands only: the logic lives in modules a test reaches directly.

Exit codes (stable, documented in the README):
0  every cell ran and nothing failed
1  a failure whose triage class is in --fail-on (default: every class but everywhere
   and infra), a flaky case, or a cell that ran no case; known issues never count
2  usage, configuration or infrastructure error (including infra-error cells)
130 interrupted (Ctrl-C); results so far are on disk and the report is rendered
"""

from __future__ import annotations

import datetime as _dt
import sqlite3
import sys
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from harness import __version__
from harness.config import Project, load_project
from harness.errors import ConfigError, LeapfrogError
from harness.model import Run, Status, Verdict
from harness.signals import sigterm_as_ctrl_c

if TYPE_CHECKING:
    from harness.report.types import Comparison

# emoji=False: ":six:" in a suite name ("project:six") or in a target's text is printed as written.
console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
out = Console(highlight=False, soft_wrap=True, emoji=False)

EXIT_OK, EXIT_FAIL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


def _split(values: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    for v in values:
        names.extend(x.strip() for x in v.split(",") if x.strip())
    return names


class Ctx:
    def __init__(self, root: Path | None, targets_dir: Path | None, suites_dir: Path | None) -> None:
        self.root, self.targets_dir, self.suites_dir = root, targets_dir, suites_dir
        self._project: Project | None = None

    @property
    def project(self) -> Project:
        if self._project is None:
            self._project = load_project(self.root, targets_dir=self.targets_dir, suites_dir=self.suites_dir)
        return self._project


def _fail(e: LeapfrogError) -> None:
    console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(EXIT_ERROR)


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
            _fail(e)
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


# ------------------------------------------------------------------ list


@main.command("list")
@click.argument("what", type=click.Choice(["targets", "suites"]))
@click.pass_obj
def list_cmd(obj: Ctx, what: str) -> None:
    """List the targets or suites leapfrog knows."""
    p = obj.project
    if what == "targets":
        for t in p.targets.values():
            out.print(f"{t.name:34} {t.kind:8} {t.arch or '-':8} {t.description}")
    else:
        for s in p.suites.values():
            out.print(f"{s.name:16} {s.kind:12} {s.description}")


# ------------------------------------------------------------------ doctor


@main.command()
@click.option("--target", "targets", multiple=True, help="Check only what these targets need.")
@click.pass_obj
def doctor(obj: Ctx, targets: tuple[str, ...]) -> None:
    """Check the host; print the fix for every gap.  Exit 2 when chosen targets cannot run."""
    from harness.doctor import blocking, install_all, run_checks

    checks = run_checks()
    names = _split(targets)
    kinds = {t.kind for t in obj.project.pick_targets(names)} if names else {"chroot"}
    for c in checks:
        mark = "[green]ok[/]" if c.ok else "[red]missing[/]"
        out.print(f"{mark:22} {c.name:22} {c.detail}", markup=True, highlight=False)
        if not c.ok and c.fix:
            out.print(f"{'':13}fix: {c.fix}", markup=False, highlight=False)
    gaps = blocking(checks, kinds)
    if gaps:
        out.print(f"\n{len(gaps)} problem(s) stop {', '.join(sorted(kinds))} targets from running.")
        if install_all(gaps):
            out.print(
                f"Install what is missing with: {install_all(gaps)}  (or run scripts/setup-host.sh)",
                markup=False,
                highlight=False,
            )
        sys.exit(EXIT_ERROR)
    out.print(f"\nready for {', '.join(sorted(kinds))} targets.")


# ------------------------------------------------------------------ run


class _CaseTimeout(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2, not in 8.1
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


def _history_slowdowns(plan: Any, db: Path | None) -> dict[tuple[str, str], Any]:
    """Slowdowns of earlier runs for auto case timeouts; a history that cannot be read is a warning."""
    from harness import autotimeout, history

    baseline = next((t.name for t in plan.targets() if t.kind == "native"), "")
    pairs = [(c.target.name, c.suite.name) for c in plan.cells if c.target.name != baseline]
    path = db or history.default_db()
    try:
        return autotimeout.from_history(path, baseline, pairs)
    except (sqlite3.Error, OSError) as e:
        console.print(
            f"[yellow]warning:[/] auto case timeouts do not use the history ({path}: {e}); "
            f"the slowdown comes from this run or the default.",
            markup=True,
            highlight=False,
        )
        return {}


def _runnable_default(p: Project) -> list[str]:
    """Every target whose backend can run here: native and chroot by default."""
    from harness.doctor import blocking, run_checks

    checks = run_checks()
    return [
        t.name
        for t in p.targets.values()
        if t.default and t.kind in ("native", "chroot") and not blocking(checks, {t.kind})
    ]


@main.command()
@click.option("--target", "-t", "targets", multiple=True, help="Target name (repeat or comma list).")
@click.option("--suite", "-s", "suites", multiple=True, help="Suite name (repeat or comma list).")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), help="Report folder [reports/<time>].")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True, help="Targets run at once.")
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
@click.option("--shard", help="Run slice K of N of the matrix, e.g. 1/3.")
@click.option(
    "--case-timeout",
    type=_CaseTimeout(),
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
@click.option(
    "--fail-on",
    "fail_on",
    metavar="CLASSES",
    help="Triage classes that make the exit code 1 (comma list, or all) "
    "[slow,emulator-suspect,target-only,unknown,baseline-only: all but everywhere and infra].",
)
@click.option(
    "--project",
    "projects",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Also run the pytest tests of this project folder or sdist on each target (repeat; see the README).",
)
@click.option("--extra", "extras", multiple=True, help="Install this extra of each --project too (repeat).")
@click.option("--group", "groups", multiple=True, help="Install this PEP 735 dependency group of --project (repeat).")
@click.pass_obj
def run(
    obj: Ctx,
    targets: tuple[str, ...],
    suites: tuple[str, ...],
    out: Path | None,
    jobs: int,
    retries: int,
    reruns: int,
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
) -> None:
    """Run suites on targets and write results.json, JUnit XML and index.html."""
    from harness import known_issues as ki
    from harness.triage import DEFAULT_FAIL_ON, parse_classes

    fail_classes = parse_classes(fail_on) if fail_on is not None else DEFAULT_FAIL_ON
    from harness.plan import Shard, make_plan
    from harness.report import load_run
    from harness.runner import Runner, RunOptions

    p = obj.project
    previous = load_run(resume) if resume else None
    if previous and not targets:
        targets = tuple(t.name for t in previous.targets)
    if previous and not suites:
        suites = tuple(s for s in previous.suites if not s.startswith("project:"))  # --project again for those
    target_names = _split(targets) or _runnable_default(p)
    suite_names = _split(suites) or ([] if projects else [s for s in p.suites if p.suites[s].kind == "in-target"])
    if not target_names:
        raise ConfigError("no target can run on this host; see `leapfrog doctor`.")
    plan = make_plan(p.pick_targets(target_names), p.pick_suites(suite_names), Shard.parse(shard) if shard else None)
    issues_file = known_issues or (p.root / "known-issues.toml")
    if known_issues and not known_issues.exists():
        raise ConfigError(f"{known_issues}: known-issues file not found.")
    issues = ki.load(issues_file) if issues_file.exists() else []
    out_dir = resume or out or (p.root / "reports" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    project_deps: list[Any] = []  # model.ProjectDeps of each --project
    if projects:
        from harness import project as proj

        work = out_dir / "projects"
        project_cells, project_deps = proj.plan(
            projects,
            p.pick_targets(target_names),
            work,
            extras=extras,
            groups=groups,
            progress=lambda m: console.print(m, markup=False, highlight=False),
        )
        plan.cells.extend(project_cells)
    elif extras or groups:
        raise ConfigError("--extra and --group choose dependencies of a --project; pass --project PATH too.")
    options = RunOptions(
        out=out_dir,
        jobs=jobs,
        retries=retries,
        reruns=reruns,
        case_timeout=None if case_timeout == "auto" else float(case_timeout) if case_timeout is not None else None,
        auto_timeout=case_timeout == "auto",
        argv=["leapfrog", *sys.argv[1:]],
        known_issues=issues,
        previous=previous,
    )
    if case_timeout == "auto" or (case_timeout is None and any(c.suite.auto_timeout for c in plan.cells)):
        options.history_slowdowns = _history_slowdowns(plan, db)
    runner = Runner(plan, options, emit=_Progress().event)
    if project_deps:  # results.json and the report carry each project's dependency table (a --resume's are kept)
        again = {d.suite for d in project_deps}
        runner.run.projects = [d for d in runner.run.projects if d.suite not in again] + project_deps
    console.print(
        f"leapfrog {__version__}: {len(runner.plan.cells)} cell(s) on {len(runner.plan.targets())} target(s)"
        f"{' (resuming)' if previous else ''} -> {out_dir}"
    )
    interrupted = False
    started = time.monotonic()
    try:
        result = runner.execute()
    except KeyboardInterrupt:
        interrupted = True
        result = runner.run
        console.print("[yellow]interrupted:[/] targets stopped; rendering what finished.", markup=True)
    try:
        _finish(p, result, out_dir, db=db, record=not no_history and not interrupted, started=started)
    except KeyboardInterrupt:
        console.print(f"interrupted while writing the report; results.json in {out_dir} is complete up to here.")
        interrupted = True
    if interrupted:
        console.print(f"resume with: leapfrog run --resume {out_dir}")
    sys.exit(EXIT_INTERRUPTED if interrupted else exit_code(result, fail_classes))


def _try_project(obj: Ctx) -> Project | None:
    """The project if it loads (a report folder can be rendered without one)."""
    try:
        return obj.project
    except LeapfrogError:
        return None


def _settings(p: Project | None, run: Run) -> dict[str, Any]:
    """Each suite's [settings] table, for the report to print (durations, QPS, ...)."""
    if p is None:
        return {}
    return {name: p.suites[name].settings for name in run.suites if name in p.suites and p.suites[name].settings}


def _finish(p: Project, result: Run, out_dir: Path, *, db: Path | None, record: bool, started: float) -> None:
    """Render the report, then record the run in the history; summarise.

    The comparison with the previous run is read from the history first, so the
    report shows it, but the run is recorded only after the report is on disk:
    a locked or broken history database is a warning, never a lost report.  A
    part of the report that cannot be written does not stop the others; then a
    ``ReportError`` (exit 2) names it, after everything else is done.
    """
    from harness.report import ReportError

    comparison = None
    history_rows = None
    if record:
        from harness import history

        try:
            comparison, history_rows = history.before_recording(result, db=db)
        except (LeapfrogError, sqlite3.Error, OSError) as e:
            console.print(f"[yellow]warning:[/] no comparison with earlier runs: {e}", markup=True, highlight=False)
    report_error: ReportError | None = None
    try:
        written = _render(result, out_dir, comparison=comparison, history=history_rows, settings=_settings(p, result))
    except ReportError as e:
        report_error, written = e, e.written
    if record:
        try:
            history.record(result, db=db, report=out_dir)
        except (LeapfrogError, sqlite3.Error, OSError) as e:
            console.print(
                f"[yellow]warning:[/] this run was not recorded in the history ({e}); the report in {out_dir} is "
                f"complete. Record it later by fixing the database and running with --resume {out_dir}, or pass "
                f"--db PATH.",
                markup=True,
                highlight=False,
            )
    _summary(result, time.monotonic() - started)
    if comparison:
        _print_changes(comparison)
    console.print(f"report: {out_dir / 'index.html'}  ({len(written)} files + results.json)")
    if report_error is not None:
        raise report_error


def _render(run: Run, out_dir: Path, **kw: Any) -> list[Path]:
    """Write JUnit XML and HTML; raises ``ReportError`` (exit 2) after writing what it could."""
    from harness.report import render_all

    return render_all(run, out_dir, **kw)


def exit_code(run: Run, fail_on: Collection[str] | None = None) -> int:
    """2 for infrastructure errors; 1 for failures no known issue explains, and for cells
    that could not run on a target for a stated reason (``not-run`` with a message); else 0.

    Which failures count is :func:`harness.triage.failing`: a triaged case when
    its class is in ``fail_on`` (default: every class but everywhere and infra).
    """
    from harness.triage import DEFAULT_FAIL_ON, failing

    verdicts = {c.verdict for c in run.cells}
    if Verdict.INFRA_ERROR in verdicts:
        return EXIT_ERROR
    for c in run.cells:
        if c.verdict is Verdict.INCOMPATIBLE and not c.cases:
            return EXIT_FAIL
        if c.verdict is Verdict.NOT_RUN and c.message:  # could not run there, for a reason (a dependency
            return EXIT_FAIL  # the target lacks): never a silent pass; an interrupted cell has no message
    return EXIT_FAIL if failing(run, DEFAULT_FAIL_ON if fail_on is None else fail_on) else EXIT_OK


#: Changes within the noise listed in the terminal before the rest is only counted (--show-noise: all).
NOISE_SHOWN = 10


def _print_changes(comparison: Comparison, *, show_noise: bool = False) -> None:
    """Every change, worst first; a timing change says which test decided it ("+19 ms < 50 ms floor").

    Changes within the noise are listed up to ``NOISE_SHOWN`` (a suite of upstream
    tests has hundreds), then counted; ``show_noise`` lists them all.
    """
    if not comparison.changes:
        out.print(f"no changes since {comparison.base_run_id}")
        return
    out.print(f"\nchanges since {comparison.base_run_id}:")
    order = ["new-failure", "verdict-worse", "slower", "fixed", "verdict-better", "verdict", "faster"]
    order += ["new", "gone", "noise"]
    ordered = sorted(comparison.changes, key=lambda c: order.index(c.kind) if c.kind in order else 99)
    noise = [c for c in ordered if c.kind == "noise"]
    if not show_noise and len(noise) > NOISE_SHOWN:
        hidden = noise[NOISE_SHOWN:]
        ordered = [c for c in ordered if c not in hidden]
        noise_note = f"  … and {len(hidden)} more within the noise (--show-noise lists them)"
    else:
        noise_note = ""
    for change in ordered:
        ratio = f" (x{change.ratio:.2f})" if change.ratio else ""
        where = f"{change.target} / {change.suite}" + (f" / {printable(change.case)}" if change.case else "")
        why = f"  [{printable(change.reason)}]" if change.reason and change.case else ""
        out.print(
            f"  {change.kind:14} {where}: {change.before or '-'} -> {change.after or '-'}{ratio}{why}",
            markup=False,
            highlight=False,
        )
    if noise_note:
        out.print(noise_note, markup=False, highlight=False)


_CONTROL = {i: f"\\x{i:02x}" for i in (*range(0x00, 0x20), 0x7F) if i not in (0x09,)}


def printable(text: str) -> str:
    """Text from a target made safe for a terminal: control characters (escape sequences) shown, not obeyed."""
    return text.translate(_CONTROL)


class _Progress:
    """One line per event on stderr: plain text that also reads well in CI logs."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.counts: dict[tuple[str, str], int] = {}

    def event(self, kind: str, data: dict[str, Any]) -> None:
        t = f"[{time.monotonic() - self.start:6.1f}s]"
        if kind == "progress":
            console.print(f"{t} {data['target']}: {data['message']}", markup=False, highlight=False)
        elif kind == "target-start":
            console.print(f"{t} {data['target']}: starting", markup=False)
        elif kind == "cell-start":
            extra = f" (attempt {data['attempt']})" if data["attempt"] > 1 else ""
            console.print(f"{t} {data['target']} / {data['suite']}: running{extra}", markup=False)
        elif kind == "case":
            key = (data["target"], data["suite"])
            self.counts[key] = self.counts.get(key, 0) + 1
            case = data["case"]
            if case.status.is_bad:
                console.print(
                    f"{t} {data['target']} / {data['suite']}: {case.status.value.upper()} {printable(case.name)}",
                    markup=False,
                    highlight=False,
                )
        elif kind == "cell-end":
            c = data["cell"]
            n = c.counts()
            console.print(
                f"{t} {c.target} / {c.suite}: {c.verdict.value} ({n['passed']}/{len(c.cases)} passed, "
                f"{c.wall:.1f}s){' - ' + c.message if c.message else ''}",
                markup=False,
                highlight=False,
            )


def _summary(run: Run, wall: float) -> None:
    from harness.report.compare import cell_slowdown

    out.print(f"\n{'target':32} {'suite':14} {'verdict':13} {'passed':>9} {'bad':>4} {'wall':>8} {'slowdown':>9}")
    for c in run.cells:
        n = c.counts()
        bad = sum(n[s.value] for s in Status if s.is_bad)
        r = cell_slowdown(run, c)
        out.print(
            f"{c.target:32} {c.suite:14} {c.verdict.value:13} {n['passed']:>4}/{len(c.cases):<4} {bad:>4} "
            f"{c.wall:>7.1f}s {(f'x{r:.2f}') if r else '':>9}",
            markup=False,
            highlight=False,
        )
    from harness.triage import counts_text, triage_counts

    triaged = counts_text(triage_counts(run))
    if triaged:
        out.print(f"triage: {triaged}", markup=False, highlight=False)
    out.print(f"total wall time {wall:.1f}s")


# ------------------------------------------------------------------ repro


@main.command()
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
        say=lambda m: console.print(f"  {printable(m)}", markup=False, highlight=False),
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


# ------------------------------------------------------------------ history


@main.command("history")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="History database [user data dir].")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
def history_cmd(db: Path | None, limit: int) -> None:
    """List recorded runs, newest last, with pass counts per target."""
    from harness import history

    rows = history.summaries(db=db, limit=limit)
    if not rows:
        out.print(f"no runs recorded in {db or history.default_db()}")
    for r in rows:
        per = "  ".join(f"{t} {p}/{n}" for t, (p, n, _s) in sorted(r.per_target.items()))
        out.print(f"{r.run_id:28} {r.started:26} {per}", markup=False, highlight=False)


@main.command()
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
    "--show-noise", is_flag=True, help=f"List every change within the noise (default: the first {NOISE_SHOWN})."
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
    from harness.report import load_run

    rules = history.Rules(
        threshold=threshold,
        min_change=min_change,
        min_median_change=min_median_change,
        min_history=min_history,
        history=history_runs,
    )

    def side(ref: str) -> tuple[str, str, history.Snapshot | None]:
        path = Path(ref)
        if path.is_dir():
            r = load_run(path)
            return r.run_id, r.started, history.load_cases_from_run(r)
        return ref, "", None

    (bid, _, bdata), (nid, nstarted, ndata) = side(base), side(new)
    with history.connect(db) as conn:
        if bdata is None:
            bdata = history.snapshot(conn, bid)
        if ndata is None:
            ndata = history.snapshot(conn, nid)
            row = conn.execute("SELECT started FROM runs WHERE run_id = ?", (nid,)).fetchone()
            nstarted = row[0] if row else ""
        for rid, data in ((bid, bdata), (nid, ndata)):
            if not data.cases and not data.verdicts:
                raise ConfigError(f'no run "{rid}" in the history; see `leapfrog history` or pass a report folder.')
        seen = history.spread(conn, nid, nstarted, set(ndata.verdicts), history_runs)
    comparison = history.diff(bdata, ndata, base_id=bid, new_id=nid, rules=rules, spread=seen)
    _print_changes(comparison, show_noise=show_noise)
    bad = history.regressions(comparison)
    noise = sum(c.kind == "noise" for c in comparison.changes)
    out.print(
        f"\n{len(bad)} regression(s): {sum(c.kind == 'new-failure' for c in bad)} new failure(s), "
        f"{sum(c.kind == 'verdict-worse' for c in bad)} worse verdict(s), "
        f"{sum(c.kind == 'slower' for c in bad)} slower; {noise} change(s) within the noise"
    )
    sys.exit(EXIT_FAIL if bad else EXIT_OK)


@main.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Merged report."
)
@click.pass_obj
def merge(obj: Ctx, folders: tuple[Path, ...], out_dir: Path) -> None:
    """Merge shard report folders into one report (as if run unsharded)."""
    import json as _json

    from harness.merge import merge_folders

    merged = merge_folders(list(folders))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(_json.dumps(merged.to_dict(), indent=1, ensure_ascii=False))
    _render(merged, out_dir, settings=_settings(_try_project(obj), merged))
    n = sum(len(c.cases) for c in merged.cells)
    out.print(f"merged {len(folders)} folder(s): {len(merged.cells)} cells, {n} cases -> {out_dir}")
    sys.exit(exit_code(merged))


# ------------------------------------------------------------------ report


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_obj
def report(obj: Ctx, folder: Path) -> None:
    """Render JUnit XML and index.html again from FOLDER/results.json."""
    from harness.report import load_run, render_all

    run = load_run(folder)
    for path in render_all(run, folder, settings=_settings(_try_project(obj), run)):
        out.print(str(path))


# ------------------------------------------------------------------ golden


@main.command()
@click.argument("suites", nargs=-1, required=True)
@click.option(
    "--target",
    "-t",
    "target_name",
    default="debian-trixie-amd64",
    show_default=True,
    help="Where make_golden.py runs (the same package versions as the riscv64 image).",
)
@click.pass_obj
def golden(obj: Ctx, suites: tuple[str, ...], target_name: str) -> None:
    """Regenerate the golden outputs of SUITES by running their make_golden.py."""
    from harness.golden import regenerate

    p = obj.project
    (target,) = p.pick_targets([target_name])
    for suite in p.pick_suites(_split(suites)):
        changed = regenerate(suite, target, progress=lambda m: console.print(f"  {m}", markup=False))
        out.print(f"{suite.name}: {len(changed)} file(s) changed" + "".join(f"\n  {c}" for c in changed))


# ------------------------------------------------------------------ images


@main.command("deps")
@click.argument("targets", nargs=-1, required=True)
@click.option(
    "-r",
    "--requirements",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A requirements.txt to resolve.",
)
@click.option(
    "--project",
    "project_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A project folder: pyproject.toml's [project].dependencies.",
)
@click.option("--extra", "extras", multiple=True, help="Also an optional-dependencies extra of --project (repeat).")
@click.option("--group", "groups", multiple=True, help="Also a PEP 735 dependency group of --project (repeat).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the answer as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write it as an HTML page.")
@click.pass_obj
def deps_cmd(
    obj: Ctx,
    targets: tuple[str, ...],
    requirements: Path | None,
    project_path: Path | None,
    extras: tuple[str, ...],
    groups: tuple[str, ...],
    json_out: Path | None,
    html_out: Path | None,
) -> None:
    """Say where each dependency comes from on each TARGET: distribution package, wheel, sdist, or nothing."""
    import json

    from harness import deps

    source, reqs = deps.requirements_of(requirements, project_path, extras, groups)
    picked = obj.project.pick_targets(_split(targets))
    report = deps.build_report(source, reqs, picked)
    out.print(deps.rich_table(report))
    for t in report.targets:
        if t.index_error:
            console.print(f"[yellow]warning:[/] {t.platform.target}: {t.index_error}", markup=True, highlight=False)
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if html_out:
        html_out.write_text(deps.render_html(report), encoding="utf-8")


@main.group()
def images() -> None:
    """Build, list and remove cached images."""


@images.command("build")
@click.option("--target", "-t", "targets", multiple=True, help="Target (repeat or comma list) [all that build images].")
@click.option("--suite", "-s", "suites", multiple=True, help="Suites whose packages go in [all].")
@click.pass_obj
def images_build(obj: Ctx, targets: tuple[str, ...], suites: tuple[str, ...]) -> None:
    """Build (or find in the cache) the image each target needs for the suites."""
    from harness.images import ensure_image
    from harness.plan import make_plan

    p = obj.project
    names = _split(targets) or [t.name for t in p.targets.values() if t.image and t.image.source == "build"]
    plan = make_plan(p.pick_targets(names), p.pick_suites(_split(suites) or list(p.suites)))
    seen: set[str] = set()
    for t in plan.targets():
        if t.image is None or t.image.source != "build":
            continue
        from harness.targets import backend_class

        extra = backend_class(t.kind).image_packages.get(t.image.distro, [])
        start = time.monotonic()
        img = ensure_image(
            t.image,
            plan.packages_for(t) + extra,
            progress=lambda m: console.print(f"  {m}", markup=False, highlight=False),
        )
        if img.meta.key not in seen:
            took = time.monotonic() - start
            out.print(f"{t.name}: {img.meta.name} ({len(img.meta.packages)} packages, {took:.1f}s) {img.rootfs}")
            seen.add(img.meta.key)
        if t.kind == "docker":  # import it into the engine now, not on the first run
            from harness.targets import make_target

            ref = make_target(t, packages=plan.packages_for(t)).prepare()  # type: ignore[attr-defined]
            out.print(f"{t.name}: docker image {ref}")


@images.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def images_fetch(obj: Ctx, names: tuple[str, ...]) -> None:
    """Download the images of targets whose [image] has a url (openEuler), verified by SHA-256."""
    from harness.images.fetch import decompress_xz, fetch_image

    for t in obj.project.pick_targets(_split(names)):
        spec = t.image
        if spec is None or not spec.url:
            raise ConfigError(f'{t.file}: target "{t.name}" has no [image] url to fetch.')
        last = [0.0]

        def show(done: int, total: int | None, _last: list[float] = last) -> None:
            now = time.monotonic()
            if now - _last[0] > 2 or (total and done == total):
                _last[0] = now
                pct = f" ({100 * done / total:.0f}%)" if total else ""
                console.print(f"  {done / 1e6:.1f} MB{pct}", markup=False)

        for url in [spec.url, *spec.firmware]:
            path, digest = fetch_image(
                url, spec.sha256 if url == spec.url else "", trust_sha256sum=spec.trust_sha256sum, progress=show
            )
            if path.suffix == ".xz" and not path.name.endswith(".tar.xz"):
                path = decompress_xz(path, digest)
            out.print(f"{t.name}: {path}")


@images.command("list")
def images_list() -> None:
    """List cached images."""
    from harness.images.cache import images_dir, list_images

    imgs = list_images()
    if not imgs:
        out.print(f"no images in {images_dir()}")
    for img in imgs:
        m = img.meta
        out.print(f"{m.name:44} {len(m.packages):3} packages  built {m.built} in {m.build_seconds:.0f}s  {img.path}")


@images.command("rm")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Remove every cached image.")
def images_rm(names: tuple[str, ...], all_: bool) -> None:
    """Remove cached images by name (as `images list` shows) or key."""
    from harness.config import suggest
    from harness.images.cache import list_images, remove_image

    imgs = list_images()
    if not names and not all_:
        raise click.UsageError("name an image (see `leapfrog images list`) or pass --all.")
    chosen = imgs if all_ else []
    for n in names:
        hit = [i for i in imgs if n in (i.meta.name, i.meta.key)]
        if not hit:
            raise ConfigError(
                f'no cached image "{n}"{suggest(n, [i.meta.name for i in imgs])}; see `leapfrog images list`.'
            )
        chosen.extend(hit)
    for img in chosen:
        remove_image(img)
        out.print(f"removed {img.meta.name}")
    if chosen:
        out.print("Docker images made from them (leapfrog/<name>:<key>) stay in the engine: docker image prune")


if __name__ == "__main__":  # pragma: no cover
    main()
