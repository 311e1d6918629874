"""One MLPerf LoadGen test (SingleStream, Server or Offline) against a handler on the host.

LoadGen (``pip install mlcommons-loadgen``; module ``mlperf_loadgen``) is
imported only when a test runs.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.loadgen.summary import SCENARIOS, ServingError, Summary, parse_summary, percentile

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
