"""From the command line's options to a finished run: plain functions, no click (as nox's workflow).

``leapfrog run`` is a chain of steps, each testable alone::

    fail_classes → prepare (select, plan, known issues, projects, options) → make_runner → execute
        → finish (history comparison, render, record) → exit_code

The CLI parses options, calls these and prints what they return; nothing here
prints.  What a step has to say while it works (a warning, a progress line)
goes to the ``warn`` or ``progress`` callable it is given.  ``compare_runs``,
``merge`` and the image functions do the same for ``leapfrog compare``,
``merge`` and ``images``.
Heavy modules (the report's Jinja, the runner, the history) are imported
inside the step that uses them, so ``leapfrog --help`` does not load them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import ConfigError, LeapfrogError
from harness.model import Verdict

if TYPE_CHECKING:
    from harness.autotimeout import Slowdown
    from harness.cell import Event
    from harness.config import Project
    from harness.history import Rules
    from harness.images.cache import CachedImage
    from harness.known_issues import KnownIssue
    from harness.model import Run
    from harness.model_deps import ProjectDeps
    from harness.plan import Plan
    from harness.records import Comparison, RunSummary
    from harness.report import ReportError
    from harness.runner import Runner, RunOptions

EXIT_OK, EXIT_FAIL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

Say = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclasses.dataclass
class RunRequest:
    """The options of ``leapfrog run``, as given (empty = not given)."""

    targets: Sequence[str] = ()  # names, already split at commas
    suites: Sequence[str] = ()
    out: Path | None = None
    jobs: int = 1
    workers: int | str | None = None  # pytest processes per cell, "auto", or None (suite.toml decides)
    retries: int = 1
    reruns: int = 0
    retime_slow: int = 0  # --retime-slow N (harness.retime)
    shard: str | None = None
    case_timeout: float | str | None = None  # seconds, "auto" or None (suite.toml decides)
    known_issues: Path | None = None
    db: Path | None = None
    resume: Path | None = None
    projects: Sequence[Path] = ()
    extras: Sequence[str] = ()
    groups: Sequence[str] = ()
    build_in_target: bool = False  # --build-in-target: sdist-only requirements and compiled projects built there
    argv: list[str] = dataclasses.field(default_factory=list)  # the command line, recorded in results.json


def fail_classes(fail_on: str | None) -> frozenset[str]:
    """The triage classes ``--fail-on`` names; without it every class but everywhere and infra."""
    from harness.triage import DEFAULT_FAIL_ON, parse_classes

    return parse_classes(fail_on) if fail_on is not None else DEFAULT_FAIL_ON


def runnable_default(p: Project) -> list[str]:
    """Every default target whose backend can run here: native and chroot only."""
    from harness.doctor import blocking, run_checks

    checks = run_checks()
    return [
        t.name
        for t in p.targets.values()
        if t.default and t.kind in ("native", "chroot") and not blocking(checks, {t.kind})
    ]


def select(p: Project, req: RunRequest, previous: Run | None = None) -> tuple[list[str], list[str]]:
    """The target and suite names to run.

    A ``--resume`` without ``-t``/``-s`` takes the interrupted run's (its
    project suites come back through ``--project``).  Without ``-t``: the
    targets :func:`runnable_default` finds; without ``-s``: every in-target
    suite, or none when ``--project`` gives the tests.
    """
    targets = list(req.targets)
    suites = list(req.suites)
    if previous and not targets:
        targets = [t.name for t in previous.targets]
    if previous and not suites:
        suites = [s for s in previous.suites if not s.startswith("project:")]
    target_names = targets or runnable_default(p)
    suite_names = suites or ([] if req.projects else [s for s in p.suites if p.suites[s].kind == "in-target"])
    if not target_names:
        raise ConfigError("no target can run on this host; see `leapfrog doctor`.")
    return target_names, suite_names


def out_folder(p: Project, req: RunRequest, now: _dt.datetime | None = None) -> Path:
    """The report folder: the resumed one, ``--out``, or ``reports/<time>`` under the project root."""
    stamp = (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    return req.resume or req.out or (p.root / "reports" / stamp)


def known_issues(p: Project, path: Path | None) -> list[KnownIssue]:
    """The known issues of ``--known-issues``, or of ``known-issues.toml`` at the root when it exists."""
    from harness import known_issues as ki

    if path and not path.exists():
        raise ConfigError(f"{path}: known-issues file not found.")
    issues_file = path or (p.root / "known-issues.toml")
    return ki.load(issues_file) if issues_file.exists() else []


def history_slowdowns(plan: Plan, db: Path | None, warn: Say = _quiet) -> dict[tuple[str, str], Slowdown]:
    """Slowdowns of earlier runs for auto case timeouts; a history that cannot be read is a warning."""
    from harness import autotimeout, paths

    baseline = next((t.name for t in plan.targets() if t.kind == "native"), "")
    pairs = [(c.target.name, c.suite.name) for c in plan.cells if c.target.name != baseline]
    path = db or paths.default_db()
    try:
        return autotimeout.from_history(path, baseline, pairs)
    except (sqlite3.Error, OSError) as e:
        warn(
            f"auto case timeouts do not use the history ({path}: {e}); the slowdown comes from this run or the default."
        )
        return {}


@dataclasses.dataclass
class Prepared:
    """A run ready to start: its plan (with ``--project`` cells), options, and each project's dependency table."""

    plan: Plan
    options: RunOptions
    projects: list[ProjectDeps]


def prepare(p: Project, req: RunRequest, *, warn: Say = _quiet, progress: Say = _quiet) -> Prepared:
    """The plan and options for ``req``, with known issues, the resumed run and auto-timeout slowdowns.

    Every mistake in the options is a ``ConfigError`` raised here, before any target starts (the first
    to start are those ``--build-in-target`` builds wheels in, last).
    """
    from harness.plan import Shard, make_plan
    from harness.runner import RunOptions

    previous = _load_run(req.resume) if req.resume else None
    target_names, suite_names = select(p, req, previous)
    targets, suites = p.pick_targets(target_names), p.pick_suites(suite_names)
    plan = make_plan(targets, suites, Shard.parse(req.shard) if req.shard else None)
    issues = known_issues(p, req.known_issues)
    out_dir = out_folder(p, req)
    project_deps: list[ProjectDeps] = []
    pending: list[Any] = []  # harness.project.Pending: --build-in-target's builds
    if req.projects:
        from harness import project as proj

        planned = proj.plan(
            req.projects,
            p.pick_targets(target_names),
            out_dir / "projects",
            extras=req.extras,
            groups=req.groups,
            build_in_target=req.build_in_target,
            progress=progress,
        )
        plan.cells.extend(planned.cells)
        project_deps, pending = planned.tables, planned.pending
    elif req.extras or req.groups:
        raise ConfigError("--extra and --group choose dependencies of a --project; pass --project PATH too.")
    elif req.build_in_target:
        raise ConfigError("--build-in-target builds the dependencies of a --project; pass --project PATH too.")
    auto = req.case_timeout == "auto"
    options = RunOptions(
        out=out_dir,
        jobs=req.jobs,
        workers="auto" if req.workers == "auto" else None if req.workers is None else int(req.workers),
        retries=req.retries,
        reruns=req.reruns,
        retime_slow=req.retime_slow,
        case_timeout=None if auto or req.case_timeout is None else float(req.case_timeout),
        auto_timeout=auto,
        argv=req.argv,
        known_issues=issues,
        previous=previous,
    )
    if auto or (req.case_timeout is None and any(c.suite.auto_timeout for c in plan.cells)):
        options.history_slowdowns = history_slowdowns(plan, req.db, warn)
    if req.retime_slow:
        from harness import retime

        options.history_durations = retime.for_cells({(c.target.name, c.suite.name) for c in plan.cells}, req.db, warn)
    if pending:  # --build-in-target: once every option is checked, each target builds its wheels (project_build)
        from harness.project_build import run_builds

        run_builds(plan, pending, out_dir, progress=progress)
    return Prepared(plan, options, project_deps)


def make_runner(prepared: Prepared, emit: Event | None = None) -> Runner:
    """The runner of a prepared run; ``emit`` hears its events (cells starting and ending, cases, progress)."""
    from harness.runner import Runner

    runner = Runner(prepared.plan, prepared.options, emit=emit)
    if prepared.projects:  # results.json and the report carry each project's dependency table (a --resume's are kept)
        again = {d.suite for d in prepared.projects}
        runner.run.projects = [d for d in runner.run.projects if d.suite not in again] + prepared.projects
    return runner


def execute(runner: Runner) -> tuple[Run, bool]:
    """Run every cell; on Ctrl-C the targets are stopped and the run so far is returned, with ``True``.

    The report's modules are loaded meanwhile (:func:`harness.report_warm.warm_report`).
    """
    from harness.report_warm import warm_report

    warm_report()
    try:
        return runner.execute(), False
    except KeyboardInterrupt:
        return runner.run, True


@dataclasses.dataclass
class Finished:
    """What :func:`finish` did: the report files written, the comparison with the previous run, a report error."""

    written: list[Path]
    comparison: Comparison | None = None
    report_error: ReportError | None = None


def finish(
    p: Project | None, result: Run, out_dir: Path, *, db: Path | None, record: bool, warn: Say = _quiet
) -> Finished:
    """Render the report, then record the run in the history.

    The comparison with the previous run is read from the history first, so the
    report shows it, but the run is recorded only after the report is on disk:
    a locked or broken history database is a warning, never a lost report.  A
    part of the report that cannot be written does not stop the others; the
    ``ReportError`` naming it is returned for the caller to raise (exit 2)
    after everything else is done.
    """
    from harness.report import ReportError

    comparison: Comparison | None = None
    history_rows: list[RunSummary] | None = None
    if record:
        from harness import history

        try:
            comparison, history_rows = history.before_recording(result, db=db)
        except (LeapfrogError, sqlite3.Error, OSError) as e:
            warn(f"no comparison with earlier runs: {e}")
    done = Finished(written=[], comparison=comparison)
    try:
        done.written = render(
            result, out_dir, comparison=comparison, history=history_rows, settings=settings(p, result)
        )
    except ReportError as e:
        done.report_error, done.written = e, e.written
    if record:
        try:
            history.record(result, db=db, report=out_dir)
        except (LeapfrogError, sqlite3.Error, OSError) as e:
            warn(
                f"this run was not recorded in the history ({e}); the report in {out_dir} is complete. "
                f"Record it later by fixing the database and running with --resume {out_dir}, or pass --db PATH."
            )
    return done


def render(run: Run, out_dir: Path, **kw: Any) -> list[Path]:
    """Write JUnit XML and HTML; raises ``ReportError`` (exit 2) after writing what it could."""
    from harness.report import render_all

    return render_all(run, out_dir, **kw)


def settings(p: Project | None, run: Run) -> dict[str, Any]:
    """Each suite's [settings] table, for the report to print (durations, QPS, ...)."""
    if p is None:
        return {}
    return {name: p.suites[name].settings for name in run.suites if name in p.suites and p.suites[name].settings}


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


# ------------------------------------------------------------------ compare, merge


def compare_runs(base: str, new: str, *, db: Path | None, rules: Rules) -> Comparison:
    """The changes from run ``base`` to run ``new``: each a run id in the history or a report folder.

    A slower case must also exceed the spread of its last ``rules.history``
    recorded runs (read from the history even when ``new`` is a folder).
    """
    from harness import history

    def side(ref: str) -> tuple[str, str, history.Snapshot | None]:
        path = Path(ref)
        if path.is_dir():
            r = _load_run(path)
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
        seen = history.spread(conn, nid, nstarted, set(ndata.verdicts), rules.history)
    return history.diff(bdata, ndata, base_id=bid, new_id=nid, rules=rules, spread=seen)


def merge(p: Project | None, folders: Sequence[Path], out_dir: Path) -> Run:
    """Merge shard report folders into one report in ``out_dir`` (results.json, JUnit XML, HTML)."""
    import json

    from harness.merge import merge_folders

    merged = merge_folders(list(folders))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(merged.to_dict(), indent=1, ensure_ascii=False))
    render(merged, out_dir, settings=settings(p, merged))
    return merged


def _load_run(folder: Path) -> Run:
    from harness.results import load_run  # not harness.report: `compare` on folders needs no Jinja

    return load_run(folder)


# ------------------------------------------------------------------ images


def build_images(
    p: Project, target_names: Sequence[str], suite_names: Sequence[str], *, progress: Say = _quiet
) -> Iterator[str]:
    """Build (or find in the cache) the image of each target that builds one, with the suites' packages.

    Without target names: every target whose [image] source is "build"; without
    suite names: every suite.  A docker target's image is also imported into the
    engine now, not on the first run.  Yields one line per image made or found.
    """
    from harness.images import ensure_image
    from harness.plan import make_plan
    from harness.targets import backend_class, make_target

    names = list(target_names) or [t.name for t in p.targets.values() if t.image and t.image.source == "build"]
    plan = make_plan(p.pick_targets(names), p.pick_suites(list(suite_names) or list(p.suites)))
    seen: set[str] = set()
    for t in plan.targets():
        if t.image is None or t.image.source != "build":
            continue
        extra = backend_class(t.kind).image_packages.get(t.image.distro, [])
        start = time.monotonic()
        img = ensure_image(t.image, plan.packages_for(t) + extra, progress=progress)
        if img.meta.key not in seen:
            took = time.monotonic() - start
            yield f"{t.name}: {img.meta.name} ({len(img.meta.packages)} packages, {took:.1f}s) {img.rootfs}"
            seen.add(img.meta.key)
        ref = make_target(t, packages=plan.packages_for(t)).prepare_image()  # a docker target imports it
        if ref:
            yield f"{t.name}: {t.kind} image {ref}"


def fetch_images(p: Project, names: Sequence[str], *, progress: Callable[[int, int | None], None]) -> Iterator[str]:
    """Download the image (and firmware) of each named target whose [image] has a url, verified by SHA-256.

    An ``.xz`` file that is not a tar is decompressed beside it.  ``progress``
    hears (bytes done, bytes in all or None).  Yields ``<target>: <path>`` per file.
    """
    from harness.images.fetch import decompress_xz, fetch_image

    for t in p.pick_targets(list(names)):
        spec = t.image
        if spec is None or not spec.url:
            raise ConfigError(f'{t.file}: target "{t.name}" has no [image] url to fetch.')
        for url in [spec.url, *spec.firmware]:
            path, digest = fetch_image(
                url, spec.sha256 if url == spec.url else "", trust_sha256sum=spec.trust_sha256sum, progress=progress
            )
            if path.suffix == ".xz" and not path.name.endswith(".tar.xz"):
                path = decompress_xz(path, digest)
            yield f"{t.name}: {path}"


def pick_images(names: Sequence[str], *, every: bool = False) -> list[CachedImage]:
    """The cached images named (by name as `images list` shows, or by key), or all of them with ``every``."""
    from harness.images.cache import list_images
    from harness.tomlread import suggest

    imgs = list_images()
    chosen = imgs if every else []
    for n in names:
        hit = [i for i in imgs if n in (i.meta.name, i.meta.key)]
        if not hit:
            raise ConfigError(
                f'no cached image "{n}"{suggest(n, [i.meta.name for i in imgs])}; see `leapfrog images list`.'
            )
        chosen.extend(hit)
    return chosen
