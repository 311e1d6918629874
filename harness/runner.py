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
import errno
import io
import itertools
import json
import os
import platform
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from harness import __version__, autotimeout
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
    clean_duration,
    clean_metric,
    verdict_for,
)
from harness.plan import Plan, PlannedCell, baseline_first
from harness.probe import CHECKS_FILE, FACTS_FILE, PLUGIN_FILE
from harness.signals import sigterm_as_ctrl_c
from harness.targets import Target, make_target

#: What the probe's watchdog prints before it ends a process stuck past the case timeout.
TIMEOUT_MARK = "leapfrog-case-timeout"

#: Bounds on what a target may send back (it is untrusted).
MAX_RESULT_LINE = 1 << 20
MAX_MESSAGE = 16384
MAX_CASE_OUTPUT = 65536
MAX_LOG = 16384
MAX_METRICS = 200
#: Bytes of one results file read per pytest pass.  Past it the cell keeps the
#: cases read so far and becomes infra-error (the rest is never loaded).
MAX_RESULTS_BYTES = 64 << 20
#: Cases kept per cell; past it, likewise.
MAX_CASES = 100_000
#: Notes about dropped values kept per pass (the rest are left out).
MAX_NOTES = 20


@dataclasses.dataclass
class RunOptions:
    out: Path
    jobs: int = 1
    retries: int = 1  # extra attempts for a cell that ended in infra-error
    max_resumes: int = 20  # how many crashes one cell may resume after
    reruns: int = 0  # failed cases are run again this many times; pass on re-run = flaky
    case_timeout: float | None = None  # overrides suite.toml
    #: ``--case-timeout auto``: every suite's case timeouts are scaled from the baseline.
    auto_timeout: bool = False
    #: Slowdowns of earlier runs for auto timeouts, by (target, suite) (:func:`harness.autotimeout.from_history`).
    history_slowdowns: dict[tuple[str, str], autotimeout.Slowdown] = dataclasses.field(default_factory=dict)
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
    #: Values dropped because they were not finite numbers (bounded, for the cell's message).
    notes: list[str] = dataclasses.field(default_factory=list)
    #: Cases left out because the output held more than ``max_cases``.
    dropped_cases: int = 0


def _describe(value: object) -> str:
    """A short, safe description of a rejected number (a 4,000-digit int is not printed)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)[:40]


def parse_probe_lines(lines: Iterable[str], max_cases: int | None = None) -> ProbeOutput:
    """Read the probe's JSON lines defensively: bad lines are skipped, sizes and counts bounded.

    Numbers are kept only when finite (``harness.model.finite``); a duration or
    metric that is not is dropped and named in ``notes``.  Cases past
    ``max_cases`` are counted in ``dropped_cases``, not kept.
    """
    max_cases = MAX_CASES if max_cases is None else max_cases
    cases: dict[str, CaseResult] = {}
    started: list[str] = []
    collected: list[str] = []
    ended = False
    facts: dict[str, Any] | None = None
    notes: list[str] = []
    dropped = 0

    def note(text: str) -> None:
        if len(notes) < MAX_NOTES:
            notes.append(text)

    for raw in lines:
        if len(raw) > MAX_RESULT_LINE:
            continue
        try:
            rec = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the parser goes
            continue
        if not isinstance(rec, dict):
            continue
        event = rec.get("event")
        name = clean_text(rec.get("name", ""))[:1000]
        if event == "start" and name:
            if len(started) < max_cases:
                started.append(name)
        elif event == "collected" and isinstance(rec.get("names"), list):
            collected = [clean_text(n)[:1000] for n in rec["names"][:max_cases]]
        elif event == "case" and name:
            if name not in cases and len(cases) >= max_cases:
                dropped += 1
                continue
            try:
                status = Status(str(rec.get("status")))
            except ValueError:
                status = Status.ERROR
            metrics_in = rec.get("metrics")
            metrics: dict[str, int | float | str | bool] = {}
            if isinstance(metrics_in, dict):
                for k, v in itertools.islice(metrics_in.items(), MAX_METRICS):
                    key = clean_text(k)[:200]
                    if isinstance(v, (bool, int, float)):
                        kept = clean_metric(v)
                        if kept is None:
                            note(f'case "{name[:200]}": metric "{key}" dropped: {_describe(v)} is not a finite number.')
                            continue
                        metrics[key] = kept
                    else:
                        metrics[key] = clean_text(v)[:1000]
            duration = clean_duration(rec.get("duration", 0.0))
            if duration is None:
                note(
                    f'case "{name[:200]}": duration {_describe(rec.get("duration"))} dropped: '
                    f"not a finite number of seconds."
                )
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
    return ProbeOutput(list(cases.values()), unfinished, collected, ended, facts, notes, dropped)


def _clean_facts(raw: dict[str, Any]) -> dict[str, Any]:
    """Facts from a target are untrusted too: each field coerced to its type and bounded
    (``TargetFacts.from_dict``), then every text cleaned of lone surrogates."""
    out: dict[str, Any] = {}
    for key, value in TargetFacts.from_dict(raw).to_dict().items():
        if isinstance(value, str):
            out[key] = clean_text(value)
        elif isinstance(value, list):
            out[key] = [clean_text(v) for v in value]
        else:
            out[key] = {clean_text(k): clean_text(v) for k, v in value.items()}
    return out


# ------------------------------------------------------------------ reading what the target wrote


class NotRegularFile(TargetError):
    """A results file the target replaced with a link, folder, FIFO, socket or device."""


def _file_kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((what for test, what in kinds if test(mode)), "not a regular file")


def read_regular(
    path: str | Path, *, dir_fd: int | None = None, offset: int = 0, limit: int | None = None, shown: str = ""
) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of a regular file from ``offset``, and whether more was there.

    The file is the target's: it is checked with lstat before it is opened, so a
    FIFO or device is never opened; it is opened with ``O_NOFOLLOW | O_NONBLOCK``
    and checked again with fstat, so a link is never followed and a swap in
    between never blocks.  ``FileNotFoundError`` when it is missing,
    :class:`NotRegularFile` when it is anything but a regular file.
    """
    shown = shown or str(path)
    limit = MAX_RESULTS_BYTES if limit is None else limit

    def refuse(what: str) -> NotRegularFile:
        return NotRegularFile(
            f'"{shown}" is {what}, not a regular file: the suite replaced the file leapfrog reads its results '
            f"from, so leapfrog refused it. Leave the file named by LEAPFROG_RESULTS to the probe."
        )

    st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise refuse(_file_kind(st.st_mode))
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise refuse("a symbolic link") from e
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(_file_kind(st.st_mode))
        parts: list[bytes] = []
        want = limit + 1  # one byte more tells whether the file goes on
        position = offset
        while want > 0:
            chunk = os.pread(fd, min(want, 1 << 20), position)
            if not chunk:
                break
            parts.append(chunk)
            position += len(chunk)
            want -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(parts)
    return data[:limit], len(data) > limit


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"


def _lines(data: bytes) -> Iterator[str]:
    """Lines of a results file, decoded one at a time (no second copy of a 64 MiB file)."""
    for raw in io.BytesIO(data):
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


class _ResultsDir:
    """The cell's folder in the target, as the host reads result files from it.

    Where the target has a host path (chroot, native) the folder is opened once,
    before the suite runs, and files are read relative to that descriptor: a
    suite that later swaps the folder for a link cannot redirect the host.
    Elsewhere (docker, VMs, ssh) a file is first copied out with ``get()`` into
    a private folder.  Either way it is read with :func:`read_regular`.
    """

    def __init__(self, target: Target, base: str, tmp: Path) -> None:
        self.target = target
        self.base = base
        self.tmp = tmp
        self.fd: int | None = None
        local = target.local_path(base)
        if local is not None:
            try:
                self.fd = os.open(local, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as e:
                raise TargetError(
                    f'target {target.name}: cannot open the cell folder "{base}" from the host ({e.strerror}).'
                ) from e

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def reader(self, name: str) -> Callable[[int, int], bytes] | None:
        """For streaming while pytest runs: (offset, limit) -> bytes; None without a host path."""
        fd = self.fd
        if fd is None:
            return None

        def read(offset: int, limit: int) -> bytes:
            return read_regular(name, dir_fd=fd, offset=offset, limit=limit)[0]

        return read

    def read(self, name: str) -> tuple[bytes, bool, str]:
        """(data, more than ``MAX_RESULTS_BYTES`` was there, why nothing was copied out).

        Raises :class:`NotRegularFile` when the target put anything but a regular file there.
        """
        shown = f"{self.base}/{name}"
        try:
            if self.fd is not None:
                data, more = read_regular(name, dir_fd=self.fd, shown=shown)
                return data, more, ""
            local = self.tmp / name
            if local.is_dir() and not local.is_symlink():
                shutil.rmtree(local)  # our own copy from an earlier pass
            local.unlink(missing_ok=True)
            try:
                self.target.get(shown, local)
            except TargetError as e:
                return b"", False, str(e)
            data, more = read_regular(local, shown=shown)
            return data, more, ""
        except FileNotFoundError:
            return b"", False, f'"{shown}" does not exist.'
        except NotRegularFile:
            raise
        except OSError as e:
            raise NotRegularFile(f'"{shown}" could not be read from the host ({e.strerror or e}).') from e


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
        #: Set under ``case_timeout = "auto"``: each case's timeout, and the baseline's name for the note.
        self.timeouts: autotimeout.AutoTimeouts | None = None
        self.baseline = ""
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

    def prepare(self, base: str) -> tuple[list[str], dict[str, str]]:
        """Put the suite and the probe in ``base`` of the target; return pytest's argv and environment.

        The argv's last item is the suite folder (``{base}/suite``): replace it
        with node ids under it to run only those (``leapfrog repro`` does).
        """
        suite = self.cell.suite
        t = self.where
        t.put(suite.path, f"{base}/suite")
        t.put(PLUGIN_FILE, f"{base}/probe/leapfrog_probe.py")
        t.put(CHECKS_FILE, f"{base}/probe/leapfrog_checks.py")
        if self.want_facts is not None:
            t.put(FACTS_FILE, f"{base}/probe/leapfrog_facts.py")
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
        suite = self.cell.suite
        t = self.where
        argv, env = self.prepare(base)
        case_timeout = self.options.case_timeout or suite.case_timeout
        done: dict[str, CaseResult] = {}
        log_parts: list[str] = []
        message = ""
        #: Why what the target sent back cannot be trusted whole: makes the cell infra-error.
        problem = ""
        notes: list[str] = []
        with tempfile.TemporaryDirectory(prefix="leapfrog-cell-") as tmp:
            results = _ResultsDir(t, base, Path(tmp))
            try:
                for attempt in range(self.options.max_resumes + 1):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        message = f"the cell ran out of its {suite.timeout:.0f} s budget"
                        break
                    with _Tail(results.reader("results.jsonl"), self._stream):
                        proc = t.run(argv, timeout=remaining, env=env, cwd=f"{base}/suite")
                    log_parts.append(
                        f"$ pytest (pass {attempt + 1}) exit={proc.exit_code} signal={signal_name(proc.signal)} "
                        f"timed_out={proc.timed_out} wall={proc.wall:.1f}s\n"
                        f"{_tail(proc.stdout, 4000)}{_tail(proc.stderr, 4000)}"
                    )
                    out, problem = self._collect(
                        results, "results.jsonl", done, notes, log_parts, finished=proc.exit_code in (0, 1)
                    )
                    if out.facts is not None and self.facts is None:
                        self.facts = out.facts
                        env.pop("LEAPFROG_FACTS", None)  # once is enough, also after a crash
                    if problem:
                        break
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
                        limit = self.timeouts.for_case(victim).seconds if self.timeouts else case_timeout
                        status, why = (
                            Status.TIMEOUT,
                            f"exceeded the case timeout of {limit:g} s (stuck in native code)",
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
                if self.options.reruns and not message and not problem:
                    problem = self._rerun_failures(done, argv, env, base, deadline, results, notes, log_parts)
            finally:
                results.close()
        if self.host_driven:
            self._health_check()
        cases = list(done.values())
        if self.timeouts is not None:
            autotimeout.annotate(cases, self.timeouts, self.baseline)
        verdict = Verdict.INFRA_ERROR if problem else verdict_for(cases)
        return CellResult(
            target=self.target.name,
            suite=suite.name,
            verdict=verdict,
            cases=cases,
            wall=round(time.monotonic() - start, 3),
            message=_bound("\n".join(m for m in (problem, message, *notes) if m), MAX_MESSAGE),
            log=_tail("\n".join(log_parts), MAX_LOG),
        )

    def _collect(
        self,
        results: _ResultsDir,
        name: str,
        done: dict[str, CaseResult],
        notes: list[str],
        log_parts: list[str],
        *,
        announce: bool = True,
        finished: bool = False,
    ) -> tuple[ProbeOutput, str]:
        """Read and parse one results file into ``done``; return what was parsed and any problem.

        A problem (the file is not a regular file, over ``MAX_RESULTS_BYTES``,
        over ``MAX_CASES`` cases, or missing although pytest ``finished``) keeps
        the cases read so far and ends the cell as infra-error; values that are
        not finite are dropped and noted.
        """
        suite = self.cell.suite
        try:
            data, more, missing = results.read(name)
        except NotRegularFile as e:
            return parse_probe_lines([]), f"target {self.target.name}: {e}"
        if missing:
            log_parts.append(f"(no results read back: {missing})")
            if finished:
                return parse_probe_lines([]), (
                    f"target {self.target.name}: pytest ran to its end, but its results could not be read back: "
                    f"{missing} Leave the file named by LEAPFROG_RESULTS to the probe."
                )
        out = parse_probe_lines(_lines(data))
        del data
        for n in out.notes:
            if n not in notes and len(notes) < MAX_NOTES:
                notes.append(n)
        over = out.dropped_cases > 0
        for c in out.cases:
            if c.name in done:
                continue
            if len(done) >= MAX_CASES:
                over = True
                break
            done[c.name] = c
            if announce and c.name not in self.streamed:
                self.emit("case", {"target": self.target.name, "suite": suite.name, "case": c})
        if more:
            cap = _size(MAX_RESULTS_BYTES)
            return out, (
                f'"{results.base}/{name}" holds more than {cap}; leapfrog kept the {len(done)} case(s) in its '
                f"first {cap}, ignored the rest and made the cell infra-error (MAX_RESULTS_BYTES in "
                f"harness/runner.py). Bound what the suite writes per case (captured output, metrics)."
            )
        if over:
            return out, (
                f"the suite reported more than {MAX_CASES:,} cases; leapfrog kept the first {MAX_CASES:,} and made "
                f"the cell infra-error (MAX_CASES in harness/runner.py). Split the suite into smaller ones."
            )
        return out, ""

    def _stream(self, cases: list[CaseResult]) -> None:
        for c in cases:
            if c.name not in self.streamed and len(self.streamed) < MAX_CASES:
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
        results: _ResultsDir,
        notes: list[str],
        log_parts: list[str],
    ) -> str:
        """Run failed cases again; one that passes becomes ``passed`` with ``flaky`` set.

        They run where the first pass ran (``self.where``): on the host for a
        host-driven suite, whose ``base`` is a host folder.  Returns a problem
        with a results file, as :meth:`_collect` does.
        """
        t = self.where
        for n in range(self.options.reruns):
            # A child case (``<case>::<test>``, the probe's child_cases) is no pytest node: its case runs again.
            failed = [
                c.name
                for c in done.values()
                if c.status in (Status.FAILED, Status.ERROR) and "::" in c.name and not _is_child(c.name, done)
            ]
            remaining = deadline - time.monotonic()
            if not failed or remaining <= 0:
                return ""
            name = f"rerun{n}.jsonl"
            proc = t.run(
                [*argv[:-1], *(f"{base}/suite/{case}" for case in failed[:200])],
                timeout=remaining,
                env={**env, "LEAPFROG_RESULTS": f"{base}/{name}", "LEAPFROG_DONE": ""},
                cwd=f"{base}/suite",
            )
            log_parts.append(f"$ pytest (re-run {n + 1} of {len(failed)} failed) exit={proc.exit_code}")
            again: dict[str, CaseResult] = {}
            _out, problem = self._collect(
                results, name, again, notes, log_parts, announce=False, finished=proc.exit_code in (0, 1)
            )
            for c in again.values():
                first = done.get(c.name)
                if first is not None and first.status in (Status.FAILED, Status.ERROR) and c.status is Status.PASSED:
                    c.flaky = True
                    c.message = f"flaky: failed, then passed on re-run {n + 1}. First failure:\n{first.message}"
                    done[c.name] = c
            if problem:
                return problem
        return ""


def _is_child(name: str, cases: Mapping[str, object]) -> bool:
    """Whether ``name`` is ``<a case in cases>::<more>``: a child case recorded by that case."""
    parts = name.split("::")
    return any("::".join(parts[:i]) in cases for i in range(2, len(parts)))


class _Tail:
    """While pytest runs, read the probe's results file from the host and announce finished cases.

    Only for targets with a host-readable path (chroot, native); a case counts
    once it is a complete line, so a half-written line is left for the next look.
    ``read(offset, limit)`` is :meth:`_ResultsDir.reader`: it never follows a
    link nor opens a FIFO; past ``MAX_RESULTS_BYTES`` the tail stops looking.
    """

    INTERVAL = 0.5
    CHUNK = MAX_RESULT_LINE * 4

    def __init__(self, read: Callable[[int, int], bytes] | None, on_cases: Callable[[list[CaseResult]], None]) -> None:
        self.read = read
        self.on_cases = on_cases
        self.offset = 0
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> _Tail:
        if self.read is not None:
            self.thread = threading.Thread(target=self._loop, name="leapfrog-tail", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stop.wait(self.INTERVAL) and self.offset < MAX_RESULTS_BYTES:
            self.poll()

    def poll(self) -> None:
        assert self.read is not None
        try:
            chunk = self.read(self.offset, self.CHUNK)
        except (OSError, TargetError):
            return  # missing yet, or refused: the read after the pass says why
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) >= self.CHUNK:  # a line longer than any valid one: skip past it
                self.offset += len(chunk)
            return
        self.offset += end + 1
        cases = parse_probe_lines(_lines(chunk[: end + 1])).cases
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
        if any(self._auto(c) for c in self.plan.cells):
            self.plan = baseline_first(self.plan)  # auto timeouts need the baseline's durations first
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
        for c in [c for c in pending if c.suite.not_run]:  # known before the target starts (--project)
            self._record(CellResult(name, c.suite.name, Verdict.NOT_RUN, message=c.suite.not_run))
            pending.remove(c)
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
            info.image = target.image_id
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
                        if self._auto(cell) and name != self.run.baseline:
                            self._set_timeouts(runner, cell)
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
