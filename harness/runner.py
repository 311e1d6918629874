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
import json
import os
import platform
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import LeapfrogError, TargetError
from harness.known_issues import KnownIssue
from harness.known_issues import apply as apply_known_issues
from harness.model import (
    CaseResult,
    CellResult,
    Run,
    Status,
    TargetFacts,
    TargetInfo,
    Verdict,
    verdict_for,
)
from harness.plan import Plan, PlannedCell
from harness.probe import CHECKS_FILE, FACTS_FILE, PLUGIN_FILE
from harness.targets import Target, make_target

#: What the probe's watchdog prints before it ends a process stuck past the case timeout.
TIMEOUT_MARK = "leapfrog-case-timeout"

#: Bounds on what a target may send back (it is untrusted).
MAX_RESULT_LINE = 1 << 20
MAX_MESSAGE = 16384
MAX_CASE_OUTPUT = 65536
MAX_LOG = 16384
MAX_METRICS = 200


@dataclasses.dataclass
class RunOptions:
    out: Path
    jobs: int = 1
    retries: int = 1  # extra attempts for a cell that ended in infra-error
    max_resumes: int = 20  # how many crashes one cell may resume after
    reruns: int = 0  # failed cases are run again this many times; pass on re-run = flaky
    case_timeout: float | None = None  # overrides suite.toml
    argv: list[str] = dataclasses.field(default_factory=list)
    known_issues: list[KnownIssue] = dataclasses.field(default_factory=list)
    previous: Run | None = None  # --resume: cells already finished there are kept, not re-run


Event = Callable[[str, dict[str, Any]], None]


def _noop(_kind: str, _data: dict[str, Any]) -> None:
    pass


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def clean_text(value: object) -> str:
    """Text from a target: lone surrogates and undecodable bytes become U+FFFD."""
    return str(value).encode("utf-8", "replace").decode("utf-8", "replace")


def _bound(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... truncated by leapfrog: {len(text) - limit} characters dropped ...]"


def _tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


# ------------------------------------------------------------------ results from the probe


@dataclasses.dataclass
class ProbeOutput:
    cases: list[CaseResult]
    started: list[str]  # started, never finished (the case that was running when it died)
    collected: list[str]
    ended: bool  # the session reached its end
    facts: dict[str, Any] | None = None  # what the target is, when asked for (LEAPFROG_FACTS)


def parse_probe_lines(lines: list[str]) -> ProbeOutput:
    """Read the probe's JSON lines defensively: bad lines are skipped, sizes bounded."""
    cases: dict[str, CaseResult] = {}
    started: list[str] = []
    collected: list[str] = []
    ended = False
    facts: dict[str, Any] | None = None
    for raw in lines:
        if len(raw) > MAX_RESULT_LINE:
            continue
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        event = rec.get("event")
        name = clean_text(rec.get("name", ""))[:1000]
        if event == "start" and name:
            started.append(name)
        elif event == "collected" and isinstance(rec.get("names"), list):
            collected = [clean_text(n)[:1000] for n in rec["names"]]
        elif event == "case" and name:
            try:
                status = Status(str(rec.get("status")))
            except ValueError:
                status = Status.ERROR
            metrics_in = rec.get("metrics")
            metrics: dict[str, int | float | str | bool] = {}
            if isinstance(metrics_in, dict):
                for k, v in list(metrics_in.items())[:MAX_METRICS]:
                    if isinstance(v, (bool, int, float)):
                        metrics[clean_text(k)[:200]] = v
                    else:
                        metrics[clean_text(k)[:200]] = clean_text(v)[:1000]
            try:
                duration = max(0.0, float(rec.get("duration", 0.0)))
            except (TypeError, ValueError):
                duration = 0.0
            cases[name] = CaseResult(
                name=name,
                status=status,
                duration=duration,
                message=_bound(clean_text(rec.get("message", "")), MAX_MESSAGE),
                output=_bound(clean_text(rec.get("output", "")), MAX_CASE_OUTPUT),
                metrics=metrics,
            )
        elif event == "end":
            ended = True
        elif event == "facts" and isinstance(rec.get("facts"), dict):
            facts = _clean_facts(rec["facts"])
    # The case that was running when the process died: the first one collected
    # (in this pass) that has no result.
    unfinished = [n for n in started if n not in cases]
    if not unfinished:
        unfinished = [n for n in collected if n not in cases][:1]
    return ProbeOutput(list(cases.values()), unfinished, collected, ended, facts)


def _clean_facts(raw: dict[str, Any]) -> dict[str, Any]:
    """Facts from a target are untrusted too: strings only, bounded."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            out[key] = clean_text(value)[:2000]
        elif isinstance(value, list):
            out[key] = [clean_text(v)[:200] for v in value[:500]]
        elif isinstance(value, dict):
            out[key] = {clean_text(k)[:200]: clean_text(v)[:2000] for k, v in list(value.items())[:500]}
    return out


def signal_name(sig: int | None) -> str:
    if not sig:
        return ""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


# ------------------------------------------------------------------ one cell


class CellRunner:
    """Run one suite against a started target, resuming after crashes.

    An in-target suite runs pytest inside the target.  A host-driven suite runs
    pytest on the host, where the ``target`` fixture (``harness.hostplugin``)
    attaches to the same started target through its ``handle()``.
    """

    def __init__(
        self, target: Target, cell: PlannedCell, options: RunOptions, emit: Event, missing: list[str] | None = None
    ) -> None:
        self.missing = missing or []
        #: Cases already announced while pytest was still running (see _Tail).
        self.streamed: set[str] = set()
        #: Set to the key packages to have the probe report the target's facts.
        self.want_facts: list[str] | None = None
        self.facts: dict[str, Any] | None = None
        self.target = target
        self.cell = cell
        self.options = options
        self.emit = emit
        self.host_driven = cell.suite.kind == "host-driven"
        self.where: Target = host_target() if self.host_driven else target

    def run(self) -> CellResult:
        suite = self.cell.suite
        t = self.where
        start = time.monotonic()
        deadline = start + suite.timeout
        base = t.make_temp_dir()
        try:
            return self._run_in(base, start, deadline)
        finally:
            with contextlib.suppress(TargetError):
                t.remove_tree(base)

    def _run_in(self, base: str, start: float, deadline: float) -> CellResult:
        suite = self.cell.suite
        t = self.where
        t.put(suite.path, f"{base}/suite")
        t.put(PLUGIN_FILE, f"{base}/probe/leapfrog_probe.py")
        t.put(CHECKS_FILE, f"{base}/probe/leapfrog_checks.py")
        if self.want_facts is not None:
            t.put(FACTS_FILE, f"{base}/probe/leapfrog_facts.py")
        case_timeout = self.options.case_timeout or suite.case_timeout
        env = {
            "LEAPFROG_RESULTS": f"{base}/results.jsonl",
            "LEAPFROG_DONE": f"{base}/done.txt",
            "LEAPFROG_CASE_TIMEOUT": str(case_timeout),
            "LEAPFROG_TARGET": self.target.name,
            "LEAPFROG_MISSING_PACKAGES": ",".join(self.missing),
            "LEAPFROG_SETTINGS": json.dumps(suite.settings),
            "PYTHONPATH": f"{base}/probe",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if self.want_facts is not None:
            env["LEAPFROG_FACTS"] = ",".join(self.want_facts)
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
        done: dict[str, CaseResult] = {}
        log_parts: list[str] = []
        message = ""
        with tempfile.TemporaryDirectory(prefix="leapfrog-cell-") as tmp:
            local = Path(tmp) / "results.jsonl"
            for attempt in range(self.options.max_resumes + 1):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    message = f"the cell ran out of its {suite.timeout:.0f} s budget"
                    break
                with _Tail(t.local_path(f"{base}/results.jsonl"), self._stream):
                    proc = t.run(argv, timeout=remaining, env=env, cwd=f"{base}/suite")
                log_parts.append(
                    f"$ pytest (pass {attempt + 1}) exit={proc.exit_code} signal={signal_name(proc.signal)} "
                    f"timed_out={proc.timed_out} wall={proc.wall:.1f}s\n"
                    f"{_tail(proc.stdout, 4000)}{_tail(proc.stderr, 4000)}"
                )
                lines: list[str] = []
                with contextlib.suppress(TargetError):
                    t.get(f"{base}/results.jsonl", local)
                    lines = local.read_text(encoding="utf-8", errors="replace").splitlines()
                out = parse_probe_lines(lines)
                if out.facts is not None and self.facts is None:
                    self.facts = out.facts
                    env.pop("LEAPFROG_FACTS", None)  # once is enough, also after a crash
                for c in out.cases:
                    if c.name not in done:
                        done[c.name] = c
                        if c.name not in self.streamed:
                            self.emit("case", {"target": self.target.name, "suite": suite.name, "case": c})
                dying = [n for n in out.started if n not in done]
                if proc.ok or (proc.exit_code in (1,) and out.ended):
                    break
                if proc.exit_code == 5 and not done:
                    message = "no tests were collected"
                    break
                if proc.exit_code in (2, 3, 4) and out.ended and not dying:
                    message = f"pytest ended with exit code {proc.exit_code} (interrupted, internal or usage error)"
                    break
                if not dying:
                    if proc.timed_out:
                        message = f"the cell timed out after {suite.timeout:.0f} s"
                    else:
                        message = (
                            f"pytest died before any case started (exit {proc.exit_code}, "
                            f"signal {signal_name(proc.signal) or 'none'})"
                        )
                    break
                victim = dying[0]
                if proc.timed_out:
                    status, why = Status.TIMEOUT, f"killed by the host: the cell exceeded {suite.timeout:.0f} s"
                elif TIMEOUT_MARK in proc.stderr:
                    status, why = (
                        Status.TIMEOUT,
                        f"exceeded the case timeout of {case_timeout:.0f} s (stuck in native code)",
                    )
                else:
                    status = Status.CRASHED
                    how = signal_name(proc.signal) or f"exit code {proc.exit_code}"
                    why = f"the Python process died during this case ({how})"
                crashed = CaseResult(
                    name=victim, status=status, duration=0.0, message=why, output=_tail(proc.stderr, 8000)
                )
                done[victim] = crashed
                self.emit("case", {"target": self.target.name, "suite": suite.name, "case": crashed})
                if proc.timed_out:
                    message = f"the cell timed out after {suite.timeout:.0f} s"
                    break
                # Resume after the dead case: tell the probe what is already recorded.
                done_file = Path(tmp) / "done.txt"
                done_file.write_text("".join(n + "\n" for n in done))
                t.put(done_file, f"{base}/done.txt")
            if self.options.reruns and not message:
                self._rerun_failures(done, argv, env, base, deadline, Path(tmp), log_parts)
        if self.host_driven:
            self._health_check()
        cases = list(done.values())
        verdict = verdict_for(cases) if cases else Verdict.INCOMPATIBLE
        return CellResult(
            target=self.target.name,
            suite=suite.name,
            verdict=verdict,
            cases=cases,
            wall=round(time.monotonic() - start, 3),
            message=message,
            log=_tail("\n".join(log_parts), MAX_LOG),
        )

    def _stream(self, cases: list[CaseResult]) -> None:
        for c in cases:
            if c.name not in self.streamed:
                self.streamed.add(c.name)
                self.emit("case", {"target": self.target.name, "suite": self.cell.suite.name, "case": c})

    def _health_check(self) -> None:
        """After a host-driven suite: is the target itself still alive?  If not, that is infrastructure."""
        probe = self.target.run(["true"], timeout=60)
        if not probe.ok:
            raise TargetError(f"target {self.target.name} stopped answering during suite {self.cell.suite.name}.")

    def _rerun_failures(
        self,
        done: dict[str, CaseResult],
        argv: list[str],
        env: dict[str, str],
        base: str,
        deadline: float,
        tmp: Path,
        log_parts: list[str],
    ) -> None:
        """Run failed cases again; one that passes becomes ``passed`` with ``flaky`` set."""
        t = self.target
        for n in range(self.options.reruns):
            failed = [c.name for c in done.values() if c.status in (Status.FAILED, Status.ERROR) and "::" in c.name]
            remaining = deadline - time.monotonic()
            if not failed or remaining <= 0:
                return
            results = f"{base}/rerun{n}.jsonl"
            proc = t.run(
                [*argv[:-1], *(f"{base}/suite/{name}" for name in failed[:200])],
                timeout=remaining,
                env={**env, "LEAPFROG_RESULTS": results, "LEAPFROG_DONE": ""},
                cwd=f"{base}/suite",
            )
            log_parts.append(f"$ pytest (re-run {n + 1} of {len(failed)} failed) exit={proc.exit_code}")
            local = tmp / f"rerun{n}.jsonl"
            with contextlib.suppress(TargetError):
                t.get(results, local)
            lines = local.read_text(encoding="utf-8", errors="replace").splitlines() if local.exists() else []
            for c in parse_probe_lines(lines).cases:
                first = done.get(c.name)
                if first is not None and c.status is Status.PASSED:
                    c.flaky = True
                    c.message = f"flaky: failed, then passed on re-run {n + 1}. First failure:\n{first.message}"
                    done[c.name] = c


class _Tail:
    """While pytest runs, read the probe's results file from the host and announce finished cases.

    Only for targets with a host-readable path (chroot, native); a case counts
    once it is a complete line, so a half-written line is left for the next look.
    """

    INTERVAL = 0.5

    def __init__(self, path: Path | None, on_cases: Callable[[list[CaseResult]], None]) -> None:
        self.path = path
        self.on_cases = on_cases
        self.offset = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Tail:
        if self.path is not None:
            self.thread = threading.Thread(target=self._loop, name="leapfrog-tail", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stop.wait(self.INTERVAL):
            self.poll()

    def poll(self) -> None:
        assert self.path is not None
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read(MAX_RESULT_LINE * 4)
        except OSError:
            return
        end = chunk.rfind(b"\n")
        if end < 0:
            return
        self.offset += end + 1
        lines = chunk[: end + 1].decode("utf-8", "replace").splitlines()
        cases = parse_probe_lines(lines).cases
        if cases:
            self.on_cases(cases)


def host_target() -> Target:
    """The host, as a target: where host-driven suites run pytest."""
    from pathlib import Path as _Path

    from harness.config import TargetConfig
    from harness.targets.native import NativeTarget

    cfg = TargetConfig(
        name="host",
        kind="native",
        file=_Path("<host>"),
        description="the host running leapfrog",
        arch="",
        python="python3",
        env={},
        image=None,
        options=NativeTarget.Options(),
    )
    return NativeTarget(cfg)


# ------------------------------------------------------------------ the run


class ResultsWriter:
    """Keeps ``results.json`` on disk current after every cell (atomic replace)."""

    def __init__(self, run: Run, out: Path) -> None:
        self.run = run
        self.out = out
        self.lock = threading.Lock()
        out.mkdir(parents=True, exist_ok=True)

    def save(self) -> None:
        with self.lock:
            tmp = self.out / "results.json.tmp"
            text = json.dumps(self.run.to_dict(), indent=1, ensure_ascii=False)
            tmp.write_bytes(text.encode("utf-8", "replace"))
            tmp.replace(self.out / "results.json")

    def append_case(self, target: str, suite: str, case: CaseResult) -> None:
        """Stream each case to ``cases.jsonl`` the moment it is known (survives kill -9)."""
        line = json.dumps({"target": target, "suite": suite, **case.to_dict()}, ensure_ascii=False)
        with self.lock, (self.out / "cases.jsonl").open("ab") as f:
            f.write(line.encode("utf-8", "replace") + b"\n")

    def add_cell(self, cell: CellResult) -> None:
        with self.lock:
            self.run.cells = [c for c in self.run.cells if (c.target, c.suite) != (cell.target, cell.suite)]
            self.run.cells.append(cell)
        self.save()

    def set_target(self, info: TargetInfo) -> None:
        with self.lock:
            self.run.targets = [t for t in self.run.targets if t.name != info.name] + [info]
        self.save()


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

    def execute(self) -> Run:
        self.writer.save()
        targets = self.plan.targets()
        try:
            with _sigterm_as_interrupt():
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
        futures = [pool.submit(self._run_target, n) for n in names]
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

    def _start(self, name: str) -> tuple[Target, TargetFacts | None]:
        cfg = next(t for t in self.plan.targets() if t.name == name)
        target = make_target(
            cfg,
            packages=self.plan.packages_for(cfg),
            progress=lambda msg: self.emit("progress", {"target": name, "message": msg}),
        )
        with self._live_lock:
            self._live[name] = target
        self.emit("target-start", {"target": name})
        target.key_packages = self.plan.key_packages_for(name)
        target.requested_ports = self.plan.ports_for(name)
        target.artifacts_dir = self.options.out / "artifacts" / name
        try:
            target.start()
            if cfg.image is not None and cfg.image.distro == "openeuler":
                from harness.images.openeuler import provision

                self.emit("progress", {"target": name, "message": "installing suite packages with dnf"})
                got = provision(target, self.plan.packages_for(cfg))
                self.missing[name] = got.missing
            in_target = any(c.suite.kind == "in-target" for c in self.plan.cells_for(name))
            facts = None if (target.facts_from_probe and in_target) else target.facts()
        except BaseException:
            self._stop(name)
            raise
        return target, facts

    def _stop(self, name: str) -> None:
        with self._live_lock:
            target = self._live.pop(name, None)
        if target is not None:
            target.stop()

    def _run_target(self, name: str) -> None:
        cells = self.plan.cells_for(name)
        info = self.run.target(name)
        assert info is not None
        pending = list(cells)
        attempts: dict[tuple[str, str], int] = {}
        while pending and not self._cancelled.is_set():
            try:
                target, facts = self._start(name)
            except LeapfrogError as e:
                # TargetError: the target broke (retried); ImageError / ConfigError while starting:
                # this target cannot run (not retried); either way the other targets go on.
                failures = attempts.get(("", ""), 0) + 1
                attempts[("", "")] = failures
                if isinstance(e, TargetError) and failures <= self.options.retries:
                    self.emit("progress", {"target": name, "message": f"start failed, retrying: {e}"})
                    continue
                info.error = str(e)
                self.writer.set_target(info)
                for c in pending:
                    self._record(
                        CellResult(
                            c.target.name,
                            c.suite.name,
                            Verdict.INFRA_ERROR,
                            message=f"the target could not start: {e}",
                            attempts=failures,
                        )
                    )
                return
            self._set_facts(name, facts)
            try:
                while pending and not self._cancelled.is_set():
                    cell = pending[0]
                    n = attempts.get(cell.key, 0) + 1
                    attempts[cell.key] = n
                    self.emit("cell-start", {"target": name, "suite": cell.suite.name, "attempt": n})
                    try:
                        distro = cell.target.image.distro if cell.target.image else "debian"
                        lacking = sorted(set(self.missing.get(name, [])) & set(cell.suite.packages_for(distro)))
                        runner = CellRunner(target, cell, self.options, self.emit, missing=lacking)
                        if info.facts is None and cell.suite.kind == "in-target":
                            runner.want_facts = self.plan.key_packages_for(name)
                        try:
                            result = runner.run()
                        finally:
                            if info.facts is None and runner.facts is not None:
                                probed = TargetFacts.from_dict(runner.facts)
                                self._set_facts(name, target.enrich_facts(probed))
                        if info.facts is None:  # the probe could not say: ask separately
                            self._set_facts(name, target.facts())
                    except TargetError as e:
                        if n <= self.options.retries:
                            self.emit(
                                "progress",
                                {
                                    "target": name,
                                    "message": f"{cell.suite.name}: {e}; restarting the target and retrying",
                                },
                            )
                            break  # restart the target, retry this cell
                        result = CellResult(name, cell.suite.name, Verdict.INFRA_ERROR, message=str(e))
                        result.attempts = n
                        self._record(result)
                        pending.pop(0)
                        break  # a broken target is not reused: the next cell gets a fresh one
                    result.attempts = n
                    self._record(result)
                    pending.pop(0)
            finally:
                try:
                    self._stop(name)
                except TargetError as e:  # a dead target may not stop cleanly: say so, go on
                    self.emit("progress", {"target": name, "message": f"did not stop cleanly: {e}"})

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
        self.emit("cell-end", {"cell": cell})


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM is handled like Ctrl-C: stop targets, keep results."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
