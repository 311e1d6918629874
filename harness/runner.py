"""Execute a plan: start each target once, run its cells, save as results arrive.

This is the one place that turns exceptions into outcomes: a ``TargetError``
becomes an ``infra-error`` cell (retried first); a case that kills its
interpreter becomes ``crashed`` and the suite resumes after it; everything else
rises.  Ctrl-C is never swallowed: targets are stopped and what finished is
already on disk.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as _dt
import math
import os
import platform
import threading
from pathlib import Path
from typing import Any

from harness import __version__, autotimeout, guest, judge, lanes
from harness.cell import CellRunner, Event
from harness.errors import LeapfrogError, TargetError
from harness.known_issues import KnownIssue
from harness.known_issues import apply as apply_known_issues
from harness.model import CellResult, Run, TargetFacts, TargetInfo, Verdict
from harness.plan import Plan, PlannedCell, baseline_first
from harness.results import ResultsWriter
from harness.signals import sigterm_as_ctrl_c
from harness.targets import Target, make_target


@dataclasses.dataclass
class RunOptions:
    out: Path
    jobs: int = 1
    #: ``--workers``: pytest processes per in-target cell, "auto" (the target's cores), None: suite.toml decides.
    workers: lanes.Workers | None = None
    retries: int = 1  # extra attempts for a cell that ended in infra-error
    max_resumes: int = 20  # how many crashes one cell may resume after
    reruns: int = 0  # failed cases are run again this many times; pass on re-run = flaky
    #: ``--retime-slow``: passed cases slower than their history run again this many times (:mod:`harness.retime`).
    retime_slow: int = 0
    #: Each passed case's fastest recorded duration, by (target, suite) (:func:`harness.retime.fastest_earlier`).
    history_durations: dict[tuple[str, str], dict[str, float]] = dataclasses.field(default_factory=dict)
    case_timeout: float | None = None  # overrides suite.toml
    #: ``--case-timeout auto``: every suite's case timeouts are scaled from the baseline.
    auto_timeout: bool = False
    #: Slowdowns of earlier runs for auto timeouts, by (target, suite) (:func:`harness.autotimeout.from_history`).
    history_slowdowns: dict[tuple[str, str], autotimeout.Slowdown] = dataclasses.field(default_factory=dict)
    argv: list[str] = dataclasses.field(default_factory=list)
    known_issues: list[KnownIssue] = dataclasses.field(default_factory=list)
    previous: Run | None = None  # --resume: cells already finished there are kept, not re-run


def _noop(_kind: str, _data: dict[str, Any]) -> None:
    pass


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


FINISHED = (Verdict.COMPATIBLE, Verdict.PARTIAL, Verdict.INCOMPATIBLE)


def resume_plan(plan: Plan, previous: Run) -> Plan:
    """The cells of ``plan`` that ``previous`` did not finish (not-run or infra-error)."""
    done = {(c.target, c.suite) for c in previous.cells if c.verdict in FINISHED}
    return Plan([c for c in plan.cells if c.key not in done], plan.shard)


def new_run(options: RunOptions, plan: Plan) -> Run:
    prev = options.previous
    if prev is not None:
        run = Run.from_dict(prev.to_dict())
        run.argv = options.argv
        run.finished = ""
        for t in plan.targets():
            if run.target(t.name) is None:
                run.targets.append(TargetInfo(name=t.name, kind=t.kind, description=t.description, arch=t.arch))
        for c in plan.cells:
            if run.cell(c.target.name, c.suite.name) is None:
                run.cells.append(CellResult(target=c.target.name, suite=c.suite.name, verdict=Verdict.NOT_RUN))
        return run
    run = Run(
        run_id=_dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{os.getpid()}",
        started=now_iso(),
        leapfrog_version=__version__,
        host=f"{platform.node()} {platform.machine()}",
        argv=options.argv,
        baseline=next((t.name for t in plan.targets() if t.kind == "native"), ""),
    )
    for t in plan.targets():
        run.targets.append(TargetInfo(name=t.name, kind=t.kind, description=t.description, arch=t.arch))
    for c in plan.cells:
        run.cells.append(CellResult(target=c.target.name, suite=c.suite.name, verdict=Verdict.NOT_RUN))
    return run


class Runner:
    def __init__(self, plan: Plan, options: RunOptions, emit: Event | None = None) -> None:
        self.options = options
        self.run = new_run(options, plan)
        self.plan = resume_plan(plan, options.previous) if options.previous else plan
        if any(self._auto(c) or self._may_split(c) for c in self.plan.cells):
            # Auto timeouts need the baseline's durations first; a split is balanced by them.
            self.plan = baseline_first(self.plan)
        self.writer = ResultsWriter(self.run, options.out)
        outer = emit or _noop

        def emit_and_stream(kind: str, data: dict[str, Any]) -> None:
            if kind == "case":
                self.writer.append_case(data["target"], data["suite"], data["case"])
            outer(kind, data)

        self.emit = emit_and_stream
        self._live: dict[str, Target] = {}
        self.missing: dict[str, list[str]] = {}  # target -> packages its distribution lacks
        self._live_lock = threading.Lock()
        self._cancelled = threading.Event()
        #: Cells recorded in this run, and targets done with all theirs: an auto timeout waits on them.
        self._recorded: set[tuple[str, str]] = set()
        self._targets_done: set[str] = set()
        self._progress = threading.Condition()

    def execute(self) -> Run:
        self.writer.save()
        targets = self.plan.targets()
        try:
            with sigterm_as_ctrl_c():
                if self.options.jobs <= 1 or len(targets) <= 1:
                    for t in targets:
                        self._run_target(t.name)
                else:
                    self._parallel([t.name for t in targets])
        except BaseException:
            self._cancelled.set()
            self._stop_all()
            raise
        finally:
            self.run.finished = now_iso()
            self.writer.save()
        return self.run

    def _parallel(self, names: list[str]) -> None:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=self.options.jobs)
        futures = [pool.submit(self._run_target_then_mark, n) for n in names]
        try:
            for f in concurrent.futures.as_completed(futures):
                f.result()
        except BaseException:
            self._cancelled.set()
            self._stop_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def _stop_all(self) -> None:
        with self._live_lock:
            live = list(self._live.values())
        for t in live:
            with contextlib.suppress(Exception):
                t.stop()

    def start_target(self, name: str) -> tuple[Target, TargetFacts | None]:
        """Start target ``name`` as this run starts it; the caller stops it with :meth:`stop_target`.

        Made from its target file with the packages of the plan's suites, and
        made ready by :func:`harness.guest.ready`; the facts are None when the
        probe reports them with the first in-target suite.  The packages its
        distribution lacks are then in ``missing[name]``.  ``leapfrog repro``
        starts a target with this too, so it starts the same one.
        """
        cfg = next(t for t in self.plan.targets() if t.name == name)

        def say(message: str) -> None:
            self.emit("progress", {"target": name, "message": message})

        target = make_target(cfg, packages=self.plan.packages_for(cfg), progress=say)
        with self._live_lock:
            self._live[name] = target
        self.emit("target-start", {"target": name})
        try:
            ready = guest.ready(target, cfg, self.plan, out=self.options.out, say=say)
        except BaseException:
            self.stop_target(name)
            raise
        self.missing[name] = ready.missing
        return target, ready.facts

    def stop_target(self, name: str) -> None:
        """Stop target ``name`` if :meth:`start_target` started it (and it is not stopped yet)."""
        with self._live_lock:
            target = self._live.pop(name, None)
        if target is not None:
            target.stop()

    def _run_target(self, name: str) -> None:
        """Run the target's cells: start it, run cells until one breaks it, start it again for the rest."""
        info = self.run.target(name)
        assert info is not None
        pending = list(self.plan.cells_for(name))
        for c in [c for c in pending if c.suite.not_run]:  # known before the target starts (--project)
            self._record(CellResult(name, c.suite.name, Verdict.NOT_RUN, message=c.suite.not_run))
            pending.remove(c)
        attempts = judge.Attempts()
        while pending and not self._cancelled.is_set():
            try:
                target, facts = self.start_target(name)
            except LeapfrogError as e:
                # TargetError: the target broke (retried); ImageError / ConfigError while starting:
                # this target cannot run (not retried); either way the other targets go on.
                failures = attempts.failed_start()
                if judge.retry_start(e, failures, self.options.retries):
                    self.emit("progress", {"target": name, "message": f"start failed, retrying: {e}"})
                    continue
                info.error = str(e)
                self.writer.set_target(info)
                for result in judge.unstarted([c.key for c in pending], e, failures):
                    self._record(result)
                return
            info.image = target.image_id
            self._set_facts(name, facts)
            try:
                self._run_cells(target, pending, attempts)
            finally:
                try:
                    self.stop_target(name)
                except TargetError as e:  # a dead target may not stop cleanly: say so, go on
                    self.emit("progress", {"target": name, "message": f"did not stop cleanly: {e}"})

    def _run_cells(self, target: Target, pending: list[PlannedCell], attempts: judge.Attempts) -> None:
        """Run ``pending`` cells on the started ``target``, removing each once recorded.

        Returns when all are done, or when one broke the target: a broken
        target is not reused, the caller starts a fresh one for the rest.
        """
        name = target.name
        while pending and not self._cancelled.is_set():
            cell = pending[0]
            n = attempts.next_try(cell.key)
            self.emit("cell-start", {"target": name, "suite": cell.suite.name, "attempt": n})
            try:
                result = self._run_cell(target, cell)
            except TargetError as e:
                if judge.retry_cell(n, self.options.retries):
                    message = f"{cell.suite.name}: {e}; restarting the target and retrying"
                    self.emit("progress", {"target": name, "message": message})
                    return  # restart the target, retry this cell
                self._record(judge.lost(name, cell.suite.name, e, n))
                pending.pop(0)
                return  # a broken target is not reused: the next cell gets a fresh one
            result.attempts = n
            self._record(result)
            pending.pop(0)

    def _run_cell(self, target: Target, cell: PlannedCell) -> CellResult:
        """One try of ``cell``; the target's facts are saved as soon as they are known."""
        name = cell.target.name
        info = self.run.target(name)
        assert info is not None
        lacking = guest.lacking(cell, self.missing.get(name, []))
        runner = CellRunner(target, cell, self.options, self.emit, missing=lacking)
        if self._auto(cell) and name != self.run.baseline:
            self._set_timeouts(runner, cell)
        if info.facts is None and cell.suite.kind == "in-target":
            runner.want_facts = self.plan.key_packages_for(name)
        plan = self._set_workers(runner, target, cell)
        try:
            result = runner.run()
            result.workers_asked, result.workers_note = plan.asked, plan.serial_because
        finally:
            if info.facts is None and runner.facts is not None:
                probed = TargetFacts.from_dict(runner.facts)
                self._set_facts(name, target.enrich_facts(probed))
        if info.facts is None:  # the probe could not say: ask separately
            self._set_facts(name, target.facts())
        return result

    def _set_workers(self, runner: CellRunner, target: Target, cell: PlannedCell) -> lanes.WorkerPlan:
        """How many pytest processes the cell is split over, balanced by the baseline's durations when known."""
        suite = cell.suite
        baseline = self.run.cell(self.run.baseline, suite.name) if self.run.baseline != target.name else None
        with self.writer.lock:
            weights, cases = lanes.weights(baseline), lanes.top_level(baseline)
        plan = lanes.plan_workers(
            kind=suite.kind,
            parallel=suite.parallel,
            suite_workers=suite.workers,
            requested=self.options.workers,
            cores=lambda: self._cores(target),
            cases=cases,
        )
        runner.workers, runner.weights = plan.count, weights
        if plan.count > 1:
            how = f"balanced by {self.run.baseline}'s durations" if weights else "dealt round-robin"
            message = f"{suite.name}: {plan.count} workers (cases {how})"
            self.emit("progress", {"target": target.name, "message": message})
        elif plan.serial_because:
            self.emit("progress", {"target": target.name, "message": f"{suite.name}: serial: {plan.serial_because}"})
        return plan

    def _cores(self, target: Target) -> int:
        """The target's usable cores, for ``workers = "auto"``: the host's where it runs on the host's cores."""
        options = target.config.options
        if target.kind == "qemu-vm":
            return int(getattr(options, "cpus", 1))
        limit = float(getattr(options, "cpus", 0) or 0)
        if target.kind == "docker" and limit > 0:
            return max(1, min(lanes.host_cores(), math.ceil(limit)))
        if target.kind in ("native", "chroot", "docker"):
            return lanes.host_cores()
        script = "import os; print(len(os.sched_getaffinity(0)))"
        proc = target.run([target.config.python, "-c", script], timeout=120)
        text = proc.stdout.strip()
        return int(text) if proc.ok and text.isdigit() and int(text) > 0 else 1

    def _may_split(self, cell: PlannedCell) -> bool:
        """Whether the cell may run over more than one worker (then the baseline's durations balance the split)."""
        want = self.options.workers if self.options.workers is not None else cell.suite.workers
        return want not in (None, 1) and cell.suite.kind == "in-target" and cell.suite.parallel

    def _auto(self, cell: PlannedCell) -> bool:
        """Whether the cell's case timeouts are scaled from the baseline (a number on the command line wins)."""
        if self.options.case_timeout is not None:
            return False
        return self.options.auto_timeout or cell.suite.auto_timeout

    def _run_target_then_mark(self, name: str) -> None:
        try:
            self._run_target(name)
        finally:
            with self._progress:
                self._targets_done.add(name)
                self._progress.notify_all()

    def _wait_for_baseline(self, target: str, suite: str) -> None:
        """With ``--jobs`` > 1: until the baseline's cell of ``suite`` is recorded (or will not be)."""
        key = (self.run.baseline, suite)
        if not any(c.key == key for c in self.plan.cells):
            return
        with self._progress:
            if key in self._recorded or self.run.baseline in self._targets_done:
                return
        self.emit("progress", {"target": target, "message": f"{suite}: auto case timeouts wait for {key[0]}'s cell"})
        with self._progress:
            while not (key in self._recorded or self.run.baseline in self._targets_done or self._cancelled.is_set()):
                self._progress.wait(timeout=1.0)

    def _set_timeouts(self, runner: CellRunner, cell: PlannedCell) -> None:
        """Give the cell its auto timeouts: from the baseline's cell of the suite and the target's slowdown."""
        self._wait_for_baseline(cell.target.name, cell.suite.name)
        with self.writer.lock:
            timeouts = autotimeout.for_cell(self.run, cell.target, cell.suite, self.options.history_slowdowns)
        runner.timeouts, runner.baseline = timeouts, self.run.baseline
        slowdown = timeouts.fallback.slowdown
        self.emit(
            "progress",
            {
                "target": cell.target.name,
                "message": f"{cell.suite.name}: auto case timeouts for {len(timeouts.cases)} case(s): baseline "
                f"duration × {slowdown.factor:.3g}× slowdown ({slowdown.describe()}) × {autotimeout.MARGIN:g}, "
                f"{autotimeout.FLOOR:g} s to {cell.suite.timeout:g} s; {timeouts.fallback.seconds:g} s for the rest",
            },
        )

    def _set_facts(self, name: str, facts: TargetFacts | None) -> None:
        info = self.run.target(name)
        assert info is not None
        if facts is not None and self.missing.get(name):
            facts.extra["missing_packages"] = " ".join(self.missing[name])
        info.facts = facts
        self.writer.set_target(info)

    def _record(self, cell: CellResult) -> None:
        if self.options.known_issues:
            info = self.run.target(cell.target)
            apply_known_issues(self.options.known_issues, cell, info.facts if info else None)
        self.writer.add_cell(cell)
        with self._progress:
            self._recorded.add((cell.target, cell.suite))
            self._progress.notify_all()
        self.emit("cell-end", {"cell": cell})
