"""One cell: one suite run against one started target, resuming after crashes.

The steps, each a method of :class:`CellRunner`: put the suite and the probe in
a fresh folder of the target (:meth:`~CellRunner.prepare`); run pytest there,
pass after pass (:meth:`~CellRunner._one_pass`), reading back what the probe
wrote (:meth:`~CellRunner._collect`) and letting :func:`harness.judge.judge_pass`
say whether the cell is finished or resumes after a case that died; run failed
cases again when asked (:meth:`~CellRunner._rerun_failures`); make the
:class:`~harness.model.CellResult` (:meth:`~CellRunner._result`).
A ``TargetError`` rises to the runner, which retries the cell on a fresh target.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from harness import autotimeout, lanes, probe_lines, probe_ship, retime
from harness.errors import TargetError
from harness.judge import Judgment, cell_verdict, judge_pass, signal_name
from harness.model import CaseResult, CellResult, Status
from harness.plan import PlannedCell
from harness.probe_lines import MAX_LOG, MAX_MESSAGE, ProbeOutput, bound, lines_of, parse_probe_lines, size_text, tail
from harness.readback import NotRegularFile, ResultsDir, Tail
from harness.targets import Completed, Target

#: Called with what happens ("case", "progress", ...) and its details.
Event = Callable[[str, dict[str, Any]], None]


class CellOptions(Protocol):
    """What a cell needs of the run's options (:class:`harness.runner.RunOptions` has it)."""

    max_resumes: int  # how many crashes one cell may resume after
    reruns: int  # failed cases are run again this many times; pass on re-run = flaky
    retime_slow: int  # passed cases slower than their history run again this many times (harness.retime)
    history_durations: dict[tuple[str, str], dict[str, float]]  # (target, suite) -> case -> fastest earlier
    case_timeout: float | None  # overrides suite.toml


@dataclasses.dataclass
class _Cell:
    """One cell under way: how pytest is run, and what its passes gathered so far."""

    argv: list[str]
    env: dict[str, str]
    base: str  # the cell's folder in the target (on the host for a host-driven suite)
    deadline: float  # time.monotonic() at which the suite's budget ends
    results: ResultsDir
    tmp: Path  # a private host folder
    done: dict[str, CaseResult] = dataclasses.field(default_factory=dict)
    log: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    message: str = ""  # why the cell ended early
    #: Why what the target sent back cannot be trusted whole: makes the cell infra-error.
    problem: str = ""
    #: Its pytest processes (one unless split over workers); they share ``done`` when there is one.
    lanes: list[lanes.Lane] = dataclasses.field(default_factory=list)
    passes: int = 0  # pytest passes started, all workers together


class CellRunner:
    """Run one suite against a started target, resuming after crashes.

    An in-target suite runs pytest inside the target.  A host-driven suite runs
    pytest on the host, where the ``target`` fixture (``harness.hostplugin``)
    attaches to the same started target through its ``handle()``.
    """

    def __init__(
        self, target: Target, cell: PlannedCell, options: CellOptions, emit: Event, missing: list[str] | None = None
    ) -> None:
        self.missing = missing or []
        #: Cases already announced while pytest was still running (see readback.Tail).
        self.streamed: set[str] = set()
        #: Set to the key packages to have the probe report the target's facts.
        self.want_facts: list[str] | None = None
        self.facts: dict[str, Any] | None = None
        #: Set under ``case_timeout = "auto"``: each case's timeout, and the baseline's name for the note.
        self.timeouts: autotimeout.AutoTimeouts | None = None
        self.baseline = ""
        self.target = target
        self.cell = cell
        self.options = options
        self.emit = emit
        self.host_driven = cell.suite.kind == "host-driven"
        self.where: Target = host_target() if self.host_driven else target
        #: pytest processes the cell is split over (:func:`harness.lanes.plan_workers`), and the
        #: baseline's case durations that balance the split (:func:`harness.lanes.weights`).
        self.workers = 1
        self.weights: dict[str, float] = {}
        #: Guards what the workers' threads share: the cell's cases, log, notes and announcements.
        self._lock = threading.RLock()

    def run(self) -> CellResult:
        start = time.monotonic()
        deadline = start + self.cell.suite.timeout
        base = self.where.make_temp_dir()
        try:
            return self._run_in(base, start, deadline)
        finally:
            with contextlib.suppress(TargetError):
                self.where.remove_tree(base)

    def prepare(self, base: str) -> tuple[list[str], dict[str, str]]:
        """Put the suite and the probe in ``base`` of the target; return pytest's argv and environment.

        The argv's last item is the suite folder (``{base}/suite``): replace it
        with node ids under it to run only those (``leapfrog repro`` does).
        """
        suite = self.cell.suite
        t = self.where
        t.put(suite.path, f"{base}/suite")
        with tempfile.TemporaryDirectory(prefix="leapfrog-probe-") as tmp:
            probe_ship.stage(Path(tmp) / "probe", facts=self.want_facts is not None)  # with bytecode where it can
            t.put(Path(tmp) / "probe", f"{base}/probe")
        case_timeout = self.options.case_timeout or suite.case_timeout
        if self.timeouts is not None:
            case_timeout = self.timeouts.fallback.seconds
            with tempfile.TemporaryDirectory(prefix="leapfrog-timeouts-") as tmp:
                table = Path(tmp) / "timeouts.json"
                table.write_text(json.dumps(self.timeouts.probe_table(), ensure_ascii=False), encoding="utf-8")
                t.put(table, f"{base}/probe/timeouts.json")
        env = {
            "LEAPFROG_RESULTS": f"{base}/results.jsonl",
            "LEAPFROG_DONE": f"{base}/done.txt",
            "LEAPFROG_CASE_TIMEOUT": str(case_timeout),
            **({"LEAPFROG_CASE_TIMEOUTS": f"{base}/probe/timeouts.json"} if self.timeouts is not None else {}),
            "LEAPFROG_TARGET": self.target.name,
            "LEAPFROG_MISSING_PACKAGES": ",".join(self.missing),
            "LEAPFROG_SETTINGS": json.dumps(suite.settings),
            "PYTHONPATH": f"{base}/probe",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if self.want_facts is not None:
            env["LEAPFROG_FACTS"] = ",".join(self.want_facts)
        if self.workers > 1 and self.weights:
            with tempfile.TemporaryDirectory(prefix="leapfrog-weights-") as tmp:
                table = Path(tmp) / "weights.json"
                table.write_text(json.dumps({"cases": self.weights}, ensure_ascii=False), encoding="utf-8")
                t.put(table, f"{base}/probe/weights.json")
            env["LEAPFROG_WORKER_WEIGHTS"] = f"{base}/probe/weights.json"
        if self.host_driven:
            env["LEAPFROG_TARGET_FILE"] = str(self.target.config.file)
            # pytest runs on the host and loads harness.hostplugin: make this very
            # harness importable there, installed or run from a source checkout.
            env["PYTHONPATH"] += os.pathsep + str(Path(__file__).resolve().parent.parent)
            env["LEAPFROG_TARGET_HANDLE"] = json.dumps(self.target.handle())
            if self.target.artifacts_dir is not None:
                # Host-side files of the suite (LoadGen's logs) land next to the report.
                env["LEAPFROG_ARTIFACTS"] = str(self.target.artifacts_dir.resolve())
        argv = [
            t.config.python,
            "-m",
            "pytest",
            "-p",
            "leapfrog_probe",
            *(["-p", "harness.hostplugin"] if self.host_driven else []),
            "-p",
            "no:cacheprovider",
            "-q",
            "-rN",
            "--color=no",
            "--rootdir",
            f"{base}/suite",
            f"{base}/suite",
        ]
        return argv, env

    def _run_in(self, base: str, start: float, deadline: float) -> CellResult:
        argv, env = self.prepare(base)
        with tempfile.TemporaryDirectory(prefix="leapfrog-cell-") as tmp:
            cell = _Cell(argv, env, base, deadline, ResultsDir(self.where, base, Path(tmp)), Path(tmp))
            cell.lanes = lanes.make(cell.env, base, cell.done, self.workers)
            try:
                self._passes(cell)
                if self.options.reruns and not cell.message and not cell.problem:
                    cell.problem = self._rerun_failures(cell)
                if self.options.retime_slow and not cell.message and not cell.problem:
                    cell.problem = self._retime_slow(cell)
            finally:
                cell.results.close()
        if self.host_driven:
            self._health_check()
        return self._result(cell, start)

    def _passes(self, cell: _Cell) -> None:
        """Run every lane's passes (at once, a thread each, when split over workers), then merge what they recorded."""
        if len(cell.lanes) == 1:
            self._lane_passes(cell, cell.lanes[0])
            cell.message = cell.lanes[0].message
            return
        lanes.run_all(cell.lanes, lambda lane: self._lane_passes(cell, lane), self.where.stop)
        merged, cell.message = lanes.merged(cell.lanes)
        cell.done.update(merged)
        cell.problem = cell.problem or lanes.collection_problem(cell.lanes, self.cell.suite.path / "suite.toml")

    def _lane_passes(self, cell: _Cell, lane: lanes.Lane) -> None:
        """Run one lane's pytest until it is finished, resuming after each case that kills it (``max_resumes``,
        for all lanes together)."""
        suite = self.cell.suite
        while True:
            with self._lock:
                if cell.problem or cell.passes >= self.options.max_resumes + len(cell.lanes):
                    return
                cell.passes += 1
            remaining = cell.deadline - time.monotonic()
            if remaining <= 0:
                lane.message = f"the cell ran out of its {suite.timeout:.0f} s budget"
                return
            proc, out = self._one_pass(cell, lane, remaining)
            if cell.problem:
                return
            judged = self._judge(proc, out, lane.done)
            if judged.victim is not None:
                with self._lock:
                    lane.done[judged.victim.name] = judged.victim
                    self.emit("case", {"target": self.target.name, "suite": suite.name, "case": judged.victim})
            if judged.finished:
                lane.message = judged.message
                return
            self._resume_after(cell, lane)

    def _one_pass(self, cell: _Cell, lane: lanes.Lane, remaining: float) -> tuple[Completed, ProbeOutput]:
        """Run pytest once (announcing cases as they finish, where the host can read them), then read its results."""
        lane.passes += 1
        with Tail(cell.results.reader(lane.results), self._stream):
            proc = self.where.run(cell.argv, timeout=remaining, env=lane.env, cwd=f"{cell.base}/suite")
        which = f"pass {lane.passes}" if lane.of == 1 else f"worker {lane.index + 1}/{lane.of}, pass {lane.passes}"
        with self._lock:
            cell.log.append(
                f"$ pytest ({which}) exit={proc.exit_code} signal={signal_name(proc.signal)} "
                f"timed_out={proc.timed_out} wall={proc.wall:.1f}s\n"
                f"{tail(proc.stdout, 4000)}{tail(proc.stderr, 4000)}"
            )
            out, problem = self._collect(cell, lane.results, lane.done, finished=proc.exit_code in (0, 1))
            cell.problem = cell.problem or problem
            lane.positions.update(out.positions)
            lane.whole = lane.whole or out.whole
            if out.facts is not None and self.facts is None:
                self.facts = out.facts
                for env in (cell.env, lane.env):
                    env.pop("LEAPFROG_FACTS", None)  # once is enough, also after a crash
        return proc, out

    def _judge(self, proc: Completed, out: ProbeOutput, done: dict[str, CaseResult]) -> Judgment:
        suite = self.cell.suite
        return judge_pass(
            proc,
            out,
            done,
            cell_timeout=suite.timeout,
            case_timeout=self.options.case_timeout or suite.case_timeout,
            timeouts=self.timeouts,
        )

    def _resume_after(self, cell: _Cell, lane: lanes.Lane) -> None:
        """Tell the lane's probe what it already recorded, so its next pass starts after the case that died."""
        done_file = cell.tmp / lane.done_file
        done_file.write_text("".join(n + "\n" for n in lane.done))
        self.where.put(done_file, f"{cell.base}/{lane.done_file}")

    def _result(self, cell: _Cell, start: float) -> CellResult:
        cases = list(cell.done.values())
        if self.timeouts is not None:
            autotimeout.annotate(cases, self.timeouts, self.baseline)
        return CellResult(
            target=self.target.name,
            suite=self.cell.suite.name,
            verdict=cell_verdict(cases, cell.problem),
            cases=cases,
            wall=round(time.monotonic() - start, 3),
            message=bound("\n".join(m for m in (cell.problem, cell.message, *cell.notes) if m), MAX_MESSAGE),
            log=tail("\n".join(cell.log), MAX_LOG),
            workers=len(cell.lanes),
        )

    def _collect(
        self, cell: _Cell, name: str, into: dict[str, CaseResult], *, announce: bool = True, finished: bool = False
    ) -> tuple[ProbeOutput, str]:
        """Read and parse one results file into ``into``; return what was parsed and any problem.

        A problem (the file is not a regular file, over ``MAX_RESULTS_BYTES``,
        over ``MAX_CASES`` cases, or missing although pytest ``finished``) keeps
        the cases read so far and ends the cell as infra-error; values that are
        not finite are dropped and noted.
        """
        suite = self.cell.suite
        try:
            data, more, missing = cell.results.read(name)
        except NotRegularFile as e:
            return parse_probe_lines([]), f"target {self.target.name}: {e}"
        if missing:
            cell.log.append(f"(no results read back: {missing})")
            if finished:
                return parse_probe_lines([]), (
                    f"target {self.target.name}: pytest ran to its end, but its results could not be read back: "
                    f"{missing} Leave the file named by LEAPFROG_RESULTS to the probe."
                )
        out = parse_probe_lines(lines_of(data))
        del data
        for n in out.notes:
            if n not in cell.notes and len(cell.notes) < probe_lines.MAX_NOTES:
                cell.notes.append(n)
        over = out.dropped_cases > 0
        others = sum(len(ln.done) for ln in cell.lanes if ln.done is not into) if len(cell.lanes) > 1 else 0
        for c in out.cases:
            if c.name in into:
                continue
            if len(into) + others >= probe_lines.MAX_CASES:
                over = True
                break
            into[c.name] = c
            if announce and c.name not in self.streamed:
                self.streamed.add(c.name)
                self.emit("case", {"target": self.target.name, "suite": suite.name, "case": c})
        if more:
            cap = size_text(probe_lines.MAX_RESULTS_BYTES)
            return out, (
                f'"{cell.results.base}/{name}" holds more than {cap}; leapfrog kept the {len(into)} case(s) in its '
                f"first {cap}, ignored the rest and made the cell infra-error (MAX_RESULTS_BYTES in "
                f"harness/probe_lines.py). Bound what the suite writes per case (captured output, metrics)."
            )
        if over:
            cases = probe_lines.MAX_CASES
            return out, (
                f"the suite reported more than {cases:,} cases; leapfrog kept the first {cases:,} and made "
                f"the cell infra-error (MAX_CASES in harness/probe_lines.py). Split the suite into smaller ones."
            )
        return out, ""

    def _stream(self, cases: list[CaseResult]) -> None:
        with self._lock:
            self._announce(cases)

    def _announce(self, cases: list[CaseResult]) -> None:
        for c in cases:
            if c.name not in self.streamed and len(self.streamed) < probe_lines.MAX_CASES:
                self.streamed.add(c.name)
                self.emit("case", {"target": self.target.name, "suite": self.cell.suite.name, "case": c})

    def _health_check(self) -> None:
        """After a host-driven suite: is the target itself still alive?  If not, that is infrastructure."""
        probe = self.target.run(["true"], timeout=60)
        if not probe.ok:
            raise TargetError(f"target {self.target.name} stopped answering during suite {self.cell.suite.name}.")

    def _rerun_failures(self, cell: _Cell) -> str:
        """Run failed cases again; one that passes becomes ``passed`` with ``flaky`` set.

        They run where the first pass ran (``self.where``): on the host for a
        host-driven suite, whose ``base`` is a host folder.  Returns a problem
        with a results file, as :meth:`_collect` does.
        """
        done, base = cell.done, cell.base
        for n in range(self.options.reruns):
            # A child case (``<case>::<test>``, the probe's child_cases) is no pytest node: its case runs again.
            failed = [
                c.name
                for c in done.values()
                if c.status in (Status.FAILED, Status.ERROR) and "::" in c.name and not _is_child(c.name, done)
            ]
            remaining = cell.deadline - time.monotonic()
            if not failed or remaining <= 0:
                return ""
            name = f"rerun{n}.jsonl"
            proc = self.where.run(
                [*cell.argv[:-1], *(f"{base}/suite/{case}" for case in failed[:200])],
                timeout=remaining,
                env={**cell.env, "LEAPFROG_RESULTS": f"{base}/{name}", "LEAPFROG_DONE": ""},
                cwd=f"{base}/suite",
            )
            cell.log.append(f"$ pytest (re-run {n + 1} of {len(failed)} failed) exit={proc.exit_code}")
            again: dict[str, CaseResult] = {}
            _out, problem = self._collect(cell, name, again, announce=False, finished=proc.exit_code in (0, 1))
            for c in again.values():
                first = done.get(c.name)
                if first is not None and first.status in (Status.FAILED, Status.ERROR) and c.status is Status.PASSED:
                    c.flaky = True
                    c.message = f"flaky: failed, then passed on re-run {n + 1}. First failure:\n{first.message}"
                    done[c.name] = c
            if problem:
                return problem
        return ""

    def _retime_slow(self, cell: _Cell) -> str:
        """Run again the passed cases slower than their history; each keeps its fastest timing (harness.retime)."""
        earlier = self.options.history_durations.get((self.target.name, self.cell.suite.name), {})

        def one_round(names: list[str], n: int) -> tuple[dict[str, CaseResult], str]:
            remaining = cell.deadline - time.monotonic()
            if remaining <= 0:
                return {}, ""
            name = f"retime{n}.jsonl"
            proc = self.where.run(
                [*cell.argv[:-1], *(f"{cell.base}/suite/{case}" for case in names)],
                timeout=remaining,
                env={**cell.env, "LEAPFROG_RESULTS": f"{cell.base}/{name}", "LEAPFROG_DONE": ""},
                cwd=f"{cell.base}/suite",
            )
            cell.log.append(f"$ pytest (re-time {n + 1}: {len(names)} slower than their history) exit={proc.exit_code}")
            again: dict[str, CaseResult] = {}
            return again, self._collect(cell, name, again, announce=False, finished=proc.exit_code in (0, 1))[1]

        return retime.retime(cell.done, earlier, self.options.retime_slow, one_round)


def _is_child(name: str, cases: Mapping[str, object]) -> bool:
    """Whether ``name`` is ``<a case in cases>::<more>``: a child case recorded by that case."""
    parts = name.split("::")
    return any("::".join(parts[:i]) in cases for i in range(2, len(parts)))


def host_target() -> Target:
    """The host, as a target: where host-driven suites run pytest."""
    from harness.config import TargetConfig
    from harness.targets.native import NativeTarget

    cfg = TargetConfig(
        name="host",
        kind="native",
        file=Path("<host>"),
        description="the host running leapfrog",
        arch="",
        python="python3",
        env={},
        image=None,
        options=NativeTarget.Options(),
    )
    return NativeTarget(cfg)
