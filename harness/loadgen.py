"""Host-side load for serving suites: a server in the target, MLPerf LoadGen on the host.

A host-driven serving suite starts a model server *inside* a target, reaches it
through ``target.forward(port)`` and loads it from the host with MLPerf LoadGen
(``pip install mlcommons-loadgen``; module ``mlperf_loadgen``).  This module is
what such a suite (and ``bench/loadgen_capacity.py``) shares:

:class:`TargetService`   a long-running command in a target, run in a background
                         thread and stopped with a second command (``kill``)
:func:`listen_address`   where a server inside a target should listen
:class:`JsonClient`      keep-alive HTTP/JSON client (httpx), safe across threads
:func:`run_scenario`     one LoadGen test (SingleStream, Server or Offline) whose
                         SUT hands each query to a thread pool, so the load
                         generator never waits on the network
:func:`parse_summary`    LoadGen's ``mlperf_log_summary.txt`` as a :class:`Summary`
:func:`percentile`       LoadGen's own percentile rule, for cross-checks
:func:`max_abs_error`    a served answer against its golden value

LoadGen and httpx are imported only when used, so the rest of leapfrog works
without them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import importlib
import math
import os
import re
import shlex
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import LeapfrogError

if TYPE_CHECKING:
    from harness.targets.base import Completed, Target

SCENARIOS = ("SingleStream", "Server", "Offline")
#: Bound on the server log quoted in a failure message (characters, each stream).
LOG_LIMIT = 6000


class ServingError(LeapfrogError):
    """A serving suite could not start, reach or drive its server."""


# ----------------------------------------------------------------------------- numbers


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p`` quantile (0 <= p < 1) the way LoadGen reports it: ``sorted[int(n * p)]``.

    No interpolation (LoadGen's ``results.cc`` indexes the sorted latencies), so
    latencies measured inside LoadGen's span compare element by element.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"percentile {p} is outside [0, 1)")
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)]


def max_abs_error(got: Sequence[Sequence[float]], want: Any) -> float:
    """Largest ``|got - want|`` over all elements; ``inf`` when shapes differ or a value is not finite."""
    import numpy as np

    try:
        g = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return math.inf
    w = np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        return math.inf
    if g.size == 0:
        return 0.0
    diff = np.abs(g - w)
    if not np.all(np.isfinite(diff)):
        return math.inf
    return float(diff.max())


def golden_mismatch(got: Sequence[Sequence[float]], want: Any, atol: float) -> str | None:
    """``None`` when every element of ``got`` is within ``atol`` of ``want``; else why not."""
    err = max_abs_error(got, want)
    if err <= atol:
        return None
    if math.isinf(err):
        shape = getattr(want, "shape", None)
        return f"answer has the wrong shape or a non-finite value (golden shape {shape})"
    return f"max abs error {err:.3g} exceeds the tolerance {atol:g}"


# ----------------------------------------------------------------------------- LoadGen summary


@dataclasses.dataclass(frozen=True)
class Summary:
    """What ``mlperf_log_summary.txt`` says (latencies in nanoseconds)."""

    scenario: str
    mode: str
    result: str  # "VALID" or "INVALID"; "" when the file has no result line
    constraints: dict[str, bool]  # "Min duration satisfied" -> True, ...
    qps: float | None  # completed samples per second (per scenario, see parse_summary)
    percentiles_ns: dict[float, int]  # 50.0 -> ns, 90.0 -> ns, ...
    min_ns: int | None
    max_ns: int | None
    mean_ns: int | None
    recommendations: list[str]
    early_stopping: list[str]
    errors: bool  # LoadGen logged errors during the test

    @property
    def valid(self) -> bool:
        return self.result == "VALID"

    def latency_ms(self, pct: float) -> float | None:
        ns = self.percentiles_ns.get(pct)
        return None if ns is None else ns / 1e6

    def unmet(self) -> list[str]:
        """The constraints LoadGen says were not satisfied."""
        return [name for name, ok in self.constraints.items() if not ok]

    def explain(self) -> str:
        """Why the result is what it is, in LoadGen's words (for a failure message)."""
        parts = [f"LoadGen {self.scenario}: {self.result or 'no result'}"]
        if self.unmet():
            parts.append("not satisfied: " + "; ".join(self.unmet()))
        parts += [f"early stopping: {line}" for line in self.early_stopping]
        parts += [f"recommendation: {line}" for line in self.recommendations]
        return "\n".join(parts)


_FIELD = re.compile(r"^\s*(?P<key>[^:]+?)\s*:\s*(?P<value>.*?)\s*$")
_ERRORS = re.compile(r"^\d+ ERRORS? encountered", re.IGNORECASE)
_PERCENTILE = re.compile(r"^(?P<pct>\d+(?:\.\d+)?) percentile latency \(ns\)$")
#: The summary line that carries throughput, by scenario (the first one present wins).
_QPS_KEYS = {
    "SingleStream": ("QPS w/ loadgen overhead", "QPS w/o loadgen overhead"),
    "MultiStream": ("Samples per query",),
    "Server": ("Completed samples per second", "Scheduled samples per second"),
    "Offline": ("Samples per second",),
}


def _number(text: str) -> float | None:
    try:
        return float(text.split(maxsplit=1)[0])
    except (ValueError, IndexError):
        return None


def parse_summary(text: str) -> Summary:
    """Read LoadGen's summary log.  Unknown lines are ignored; a missing field is ``None``.

    Throughput is "QPS w/ loadgen overhead" for SingleStream, "Completed samples per
    second" for Server (older LoadGen: "Scheduled samples per second") and "Samples
    per second" for Offline.  The bullets under "Recommendations:" and "Early
    Stopping Result:" are kept (continuation lines joined), for failure messages.
    """
    fields: dict[str, str] = {}
    constraints: dict[str, bool] = {}
    percentiles: dict[float, int] = {}
    blocks: dict[str, list[str]] = {"Recommendations": [], "Early Stopping Result": []}
    block: list[str] | None = None
    errors = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("==="):
            block = None
            continue
        if line.endswith(":") and line[:-1] in blocks:
            block = blocks[line[:-1]]
            continue
        if block is not None:
            if line.startswith("*"):
                block.append(line.lstrip("* ").strip())
                continue
            if block and not _FIELD.match(line):
                block[-1] += " " + line
                continue
            block = None
        if _ERRORS.match(line):
            errors = True
        m = _FIELD.match(line)
        if not m:
            continue
        key, value = m.group("key"), m.group("value")
        if key.endswith("satisfied"):
            constraints[key] = value.lower() == "yes"
            continue
        pm = _PERCENTILE.match(key)
        if pm:
            ns = _number(value)
            if ns is not None:
                percentiles[float(pm.group("pct"))] = int(ns)
            continue
        fields.setdefault(key, value)
    scenario = fields.get("Scenario", "")
    qps = None
    for key in _QPS_KEYS.get(scenario, ()):
        if key in fields:
            qps = _number(fields[key])
            break

    def nanoseconds(key: str) -> int | None:
        value = _number(fields.get(key, ""))
        return None if value is None else int(value)

    return Summary(
        scenario=scenario,
        mode=fields.get("Mode", ""),
        result=fields.get("Result is", ""),
        constraints=constraints,
        qps=qps,
        percentiles_ns=percentiles,
        min_ns=nanoseconds("Min latency (ns)"),
        max_ns=nanoseconds("Max latency (ns)"),
        mean_ns=nanoseconds("Mean latency (ns)"),
        recommendations=blocks["Recommendations"],
        early_stopping=blocks["Early Stopping Result"],
        errors=errors,
    )


# ----------------------------------------------------------------------------- one LoadGen test


@dataclasses.dataclass(frozen=True)
class ScenarioSettings:
    """The LoadGen knobs a serving suite sets (durations in ms, latencies in ms)."""

    scenario: str
    min_duration_ms: int
    min_query_count: int
    max_duration_ms: int = 0  # 0: LoadGen's default (no limit)
    target_qps: float = 0.0  # Server: Poisson arrival rate
    target_latency_ms: float = 0.0  # Server: the bound on the latency percentile
    latency_percentile: float = 0.99  # Server: which percentile the bound applies to
    expected_qps: float = 0.0  # Offline: sizes the one big query (samples = qps * min duration * 1.1)
    batch_size: int = 1  # Offline: samples per request the SUT sends
    workers: int = 8  # host threads that carry requests

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f'scenario "{self.scenario}" is not one of {", ".join(SCENARIOS)}')
        if self.scenario == "Server" and (self.target_qps <= 0 or self.target_latency_ms <= 0):
            raise ValueError("the Server scenario needs target_qps > 0 and target_latency_ms > 0")
        if self.scenario == "Offline" and self.expected_qps <= 0:
            raise ValueError("the Offline scenario needs expected_qps > 0")
        if self.workers < 1 or self.batch_size < 1:
            raise ValueError("workers and batch_size must be at least 1")

    def chosen(self) -> dict[str, int | float]:
        """The values that shape this test, for the report (only those that apply)."""
        out: dict[str, int | float] = {
            "min_duration_ms": self.min_duration_ms,
            "min_query_count": self.min_query_count,
        }
        if self.max_duration_ms:
            out["max_duration_ms"] = self.max_duration_ms
        if self.scenario == "Server":
            out["target_qps"] = self.target_qps
            out["target_latency_ms"] = self.target_latency_ms
            out["latency_percentile"] = self.latency_percentile
        if self.scenario == "Offline":
            out["expected_qps"] = round(self.expected_qps, 3)
            out["batch_size"] = self.batch_size
        return out


#: Answers queries for a list of sample indices: per sample ``None`` (right) or why it is wrong.
Handler = Callable[[Sequence[int]], Sequence[str | None]]


@dataclasses.dataclass
class ScenarioResult:
    settings: ScenarioSettings
    summary: Summary
    latencies_s: list[float]  # per sample, measured by the SUT (issue callback -> answer checked)
    samples: int
    errors: int
    error_examples: list[str]
    wall: float
    log_dir: Path

    def metrics(self, prefix: str, *, latencies: bool = True) -> dict[str, int | float | bool | str]:
        """``<prefix>_p50_ms``, ``_p90_ms``, ``_p99_ms`` (unless ``latencies`` is false), ``_qps``,
        ``_valid``, ``_errors``, ``_samples``, the settings that shaped the test and the log folder."""
        out: dict[str, int | float | bool | str] = {}
        for pct in (50.0, 90.0, 99.0) if latencies else ():
            ms = self.summary.latency_ms(pct)
            if ms is not None:
                out[f"{prefix}_p{pct:.0f}_ms"] = round(ms, 3)
        if self.summary.qps is not None:
            out[f"{prefix}_qps"] = round(self.summary.qps, 3)
        out[f"{prefix}_valid"] = self.summary.valid
        out[f"{prefix}_errors"] = self.errors
        out[f"{prefix}_samples"] = self.samples
        for key, value in self.settings.chosen().items():
            out[f"{prefix}_{key}"] = value
        out[f"{prefix}_log"] = str(self.log_dir)
        return out

    def cross_check(self, slack_ms: float = 1.0) -> list[str]:
        """Problems found by comparing LoadGen's percentiles with the SUT's own latencies.

        The SUT times each sample inside LoadGen's own span (from the issue callback
        to just before ``QuerySamplesComplete``), so with LoadGen's percentile rule
        its percentiles can never exceed LoadGen's; a breach means the summary was
        misread (wrong unit, wrong line).  Also checks that every issued sample was
        answered.
        """
        problems = []
        if not self.latencies_s:
            return ["the SUT recorded no latencies"]
        if len(self.latencies_s) != self.samples:
            problems.append(f"{self.samples} samples issued but {len(self.latencies_s)} answered")
        for pct, ns in sorted(self.summary.percentiles_ns.items()):
            own_ms = percentile(self.latencies_s, pct / 100.0) * 1e3
            lg_ms = ns / 1e6
            if own_ms > lg_ms * 1.05 + slack_ms:
                problems.append(f"p{pct:g}: the SUT measured {own_ms:.3f} ms but LoadGen reports {lg_ms:.3f} ms")
        return problems


def _loadgen() -> Any:
    try:
        return importlib.import_module("mlperf_loadgen")  # compiled, no type information
    except ImportError as e:
        raise ServingError(
            "MLPerf LoadGen is not installed on the host; run: python3 -m pip install mlcommons-loadgen"
        ) from e


def artifacts_root() -> Path:
    """``LEAPFROG_ARTIFACTS`` when the runner sets it, else a fresh temporary folder."""
    env = os.environ.get("LEAPFROG_ARTIFACTS", "")
    if env:
        root = Path(env)
        root.mkdir(parents=True, exist_ok=True)
        return root
    return Path(tempfile.mkdtemp(prefix="leapfrog-artifacts-"))


def run_scenario(
    settings: ScenarioSettings,
    sample_count: int,
    handler: Handler,
    log_dir: Path,
    *,
    max_error_examples: int = 5,
) -> ScenarioResult:
    """Run one LoadGen performance test against ``handler``; logs go to ``log_dir``.

    LoadGen calls ``issue_query`` from its own thread; each query (Offline: each
    batch of ``settings.batch_size`` samples) is handed to a pool of
    ``settings.workers`` threads, which call ``handler`` and complete the samples.
    A handler that raises marks its samples wrong; every sample is completed
    whatever happens, so LoadGen never waits forever.
    """
    lg = _loadgen()
    log_dir.mkdir(parents=True, exist_ok=True)
    ts = lg.TestSettings()
    ts.scenario = getattr(lg.TestScenario, settings.scenario)
    ts.mode = lg.TestMode.PerformanceOnly
    ts.min_duration_ms = int(settings.min_duration_ms)
    ts.min_query_count = int(settings.min_query_count)
    if settings.max_duration_ms:
        ts.max_duration_ms = int(settings.max_duration_ms)
    if settings.scenario == "Server":
        ts.server_target_qps = float(settings.target_qps)
        ts.server_target_latency_ns = int(settings.target_latency_ms * 1e6)
        ts.server_target_latency_percentile = float(settings.latency_percentile)
    if settings.scenario == "Offline":
        ts.offline_expected_qps = float(settings.expected_qps)

    lock = threading.Lock()
    latencies: list[float] = []
    problems: list[str] = []
    counts = {"issued": 0, "errors": 0}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="leapfrog-sut")

    def answer(chunk: list[Any], issued: float) -> None:
        try:
            verdicts = list(handler([s.index for s in chunk]))
            if len(verdicts) != len(chunk):
                verdicts = [f"the handler answered {len(verdicts)} of {len(chunk)} samples"] * len(chunk)
        except Exception as e:  # one bad request must not stall LoadGen
            verdicts = [f"{type(e).__name__}: {e}"] * len(chunk)
        took = time.perf_counter() - issued
        with lock:
            latencies.extend([took] * len(chunk))
            for v in verdicts:
                if v is not None:
                    counts["errors"] += 1
                    if len(problems) < max_error_examples:
                        problems.append(v)
        lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in chunk])

    def issue_query(query_samples: list[Any]) -> None:
        issued = time.perf_counter()
        samples = list(query_samples)
        step = settings.batch_size if settings.scenario == "Offline" else 1
        with lock:
            counts["issued"] += len(samples)
        for i in range(0, len(samples), step):
            pool.submit(answer, samples[i : i + step], issued)

    def flush_queries() -> None:
        pass

    def load_samples(_indices: list[int]) -> None:
        pass  # the samples live in the handler (golden inputs); nothing to stage

    log_out = lg.LogOutputSettings()
    log_out.outdir = str(log_dir)
    log_out.copy_summary_to_stdout = False
    log_settings = lg.LogSettings()
    log_settings.log_output = log_out
    log_settings.enable_trace = False
    sut = lg.ConstructSUT(issue_query, flush_queries)
    qsl = lg.ConstructQSL(sample_count, sample_count, load_samples, load_samples)
    start = time.monotonic()
    try:
        lg.StartTestWithLogSettings(sut, qsl, ts, log_settings)
    finally:
        pool.shutdown(wait=True)
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    wall = time.monotonic() - start
    for empty in ("mlperf_log_trace.json", "mlperf_log_accuracy.json"):  # no trace; no accuracy in this mode
        (log_dir / empty).unlink(missing_ok=True)
    summary_file = log_dir / "mlperf_log_summary.txt"
    if not summary_file.is_file():
        raise ServingError(f"LoadGen wrote no summary log in {log_dir}.")
    return ScenarioResult(
        settings=settings,
        summary=parse_summary(summary_file.read_text(encoding="utf-8", errors="replace")),
        latencies_s=latencies,
        samples=counts["issued"],
        errors=counts["errors"],
        error_examples=problems,
        wall=wall,
        log_dir=log_dir,
    )


# ----------------------------------------------------------------------------- HTTP


class JsonClient:
    """A keep-alive HTTP client for JSON endpoints (httpx), shared by the SUT's threads."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, connections: int = 8) -> None:
        try:
            import httpx
        except ImportError as e:
            raise ServingError("httpx is not installed on the host; run: python3 -m pip install httpx") from e
        self.base_url = base_url
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, limits=limits)
        self._transport_error: type[Exception] = httpx.TransportError

    def get(self, path: str) -> Any:
        return self._checked(self._http.get(path))

    def post(self, path: str, body: Any) -> Any:
        return self._checked(self._http.post(path, json=body))

    def reachable(self, path: str) -> Any | None:
        """The JSON at ``path``, or ``None`` while the server does not answer yet."""
        try:
            return self.get(path)
        except (self._transport_error, ServingError):
            return None

    def _checked(self, response: Any) -> Any:
        if response.status_code != 200:
            raise ServingError(
                f"{response.request.method} {response.request.url} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json()

    def close(self) -> None:
        self._http.close()


# ----------------------------------------------------------------------------- a server in a target


def listen_address(target: Target) -> tuple[str, int]:
    """Where a server inside ``target`` listens: (bind address, port; 0 = any free port).

    native and chroot share the host's network and ssh/qemu-vm tunnel to the
    target's loopback: 127.0.0.1 and a port the server picks.  A docker target
    publishes only the suite's ``ports`` (and its own file's), and only on the
    host's 127.0.0.1; the server must listen on every interface of
    the container's own network namespace for the published port to reach it.
    """
    ports = list(getattr(target, "published_ports", None) or [])
    if ports:
        return "0.0.0.0", int(ports[0])  # noqa: S104 -- the container's own namespace, published on host loopback
    return "127.0.0.1", 0


def free_host_port() -> int:
    """A TCP port free on the host's loopback right now (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail(text: str, limit: int = LOG_LIMIT) -> str:
    return text if len(text) <= limit else f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]


class TargetService:
    """A long-running command inside a target: a server.

    ``target.run`` blocks until its command ends, so it runs in a background
    thread; :meth:`stop` runs ``kill`` in the target against the pid the command
    wrote to ``pid_file`` (SIGTERM, then SIGKILL after ``grace``) and joins the
    thread.  The run's ``timeout`` bounds the service's life in any case, and the
    target's own ``stop()`` kills whatever is left after an error or Ctrl-C.
    """

    def __init__(
        self,
        target: Target,
        argv: list[str],
        *,
        pid_file: str,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.target = target
        self.argv = argv
        self.pid_file = pid_file
        self.timeout = timeout
        self.env = env
        self.cwd = cwd
        self.completed: Completed | None = None
        self.failure: BaseException | None = None
        self.started_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"leapfrog-service-{target.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.completed = self.target.run(self.argv, timeout=self.timeout, env=self.env, cwd=self.cwd)
        except BaseException as e:  # reported by log() and the caller's health wait
            self.failure = e

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def read(self, path: str) -> str | None:
        """Text of a small file in the target, or ``None`` when it is not there (yet)."""
        done = self.target.run(["cat", path], timeout=60)
        return done.stdout if done.ok else None

    def pid(self) -> int | None:
        text = self.read(self.pid_file)
        try:
            return int(text.strip()) if text else None
        except ValueError:
            return None

    def stop(self, grace: float = 15.0) -> Completed | None:
        """End the service (SIGTERM, SIGKILL after ``grace`` s) and return how it ended."""
        if self._thread.ident is None:
            return None
        for sig in ("TERM", "KILL"):
            if not self.running:
                break
            pid = self.pid()
            if pid is not None:
                self.target.run(["kill", f"-{sig}", str(pid)], timeout=60)
            self._thread.join(grace)
        return self.completed

    def log(self, limit: int = LOG_LIMIT) -> str:
        """The service's stdout and stderr (bounded); complete once it has ended."""
        if self.failure is not None:
            return f"the command could not run: {type(self.failure).__name__}: {self.failure}"
        if self.completed is None:
            return "(still running: no output yet)"
        c = self.completed
        how = f"exit code {c.exit_code}" if c.exit_code is not None else f"signal {c.signal}"
        if c.timed_out:
            how = f"killed after {self.timeout:.0f} s"
        return (
            f"$ {shlex.join(c.argv)}   [{how}, {c.wall:.1f} s]\n"
            f"--- stdout ---\n{_tail(c.stdout, limit)}\n--- stderr ---\n{_tail(c.stderr, limit)}"
        )


def wait_until(
    service: TargetService, ready: Callable[[], Any | None], *, timeout: float, what: str, poll: float = 1.0
) -> Any:
    """Poll ``ready`` until it returns something; the service dying or ``timeout`` is a ServingError.

    On failure the service is stopped and its log is in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value is not None:
            return value
        if not service.running:
            service.stop()
            raise ServingError(f"the server ended before {what}.\n{service.log()}")
        if time.monotonic() >= deadline:
            service.stop()
            raise ServingError(f"the server was not {what} after {timeout:.0f} s.\n{service.log()}")
        time.sleep(poll)


@contextlib.contextmanager
def running(service: TargetService) -> Iterator[TargetService]:
    """Start ``service``; stop it on the way out, also on an error or Ctrl-C."""
    service.start()
    try:
        yield service
    finally:
        service.stop()
