"""Fixtures for the serving suite (host-driven: this runs on the host).

``served`` copies ``server.py`` and ``models/`` into a fresh folder in the
target, starts the server there in a background thread (``target.run`` blocks
until the server ends), waits for its port file and for ``/health`` through
``target.forward(port)``, and stops it with ``kill`` at the end of the session.
A server that never becomes healthy is an error whose message carries the
server's own output.

The ``target`` and ``suite_settings`` fixtures come from ``harness.hostplugin``,
``metrics`` from the probe plugin.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.loadgen import (
    JsonClient,
    ScenarioResult,
    ScenarioSettings,
    TargetService,
    artifacts_root,
    golden_mismatch,
    listen_address,
    run_scenario,
    wait_until,
)
from harness.targets import Target

HERE = Path(__file__).resolve().parent
MODELS = ("mlp", "convnet")
#: The distribution packages behind each model's runtime (a missing one makes its cases skips).
RUNTIME_PACKAGES = {"mlp": ("onnxruntime",), "convnet": ("torch",)}
#: Scenario names as they appear in metric keys: ``<model>_<snake>_p99_ms``.
SNAKE = {"SingleStream": "single_stream", "Server": "server", "Offline": "offline"}
Metrics = dict[str, Any]


# ----------------------------------------------------------------------------- settings and goldens


@dataclasses.dataclass(frozen=True)
class Settings:
    """suite.toml ``[settings]``, typed; a missing key is an error naming it."""

    raw: dict[str, Any]

    def _get(self, key: str) -> Any:
        if key not in self.raw:
            raise KeyError(f'suites/serving/suite.toml: [settings] has no "{key}"')
        return self.raw[key]

    def integer(self, key: str) -> int:
        return int(self._get(key))

    def number(self, key: str) -> float:
        return float(self._get(key))

    def flag(self, key: str) -> bool:
        return bool(self._get(key))


@dataclasses.dataclass(frozen=True)
class Golden:
    """``golden/serving.npz``: the inputs and each model's x86-64 outputs, with the tolerance."""

    inputs: np.ndarray
    outputs: dict[str, np.ndarray]
    atol: float

    def check(self, model: str, indices: Sequence[int], rows: Any) -> list[str | None]:
        """Per sample: ``None`` when the served row matches its golden, else why not."""
        if not isinstance(rows, list) or len(rows) != len(indices):
            got = len(rows) if isinstance(rows, list) else type(rows).__name__
            return [f"{model}: asked for {len(indices)} rows, got {got}"] * len(indices)
        want = self.outputs[model]
        out: list[str | None] = []
        for i, row in zip(indices, rows, strict=True):
            why = golden_mismatch([row], want[i : i + 1], self.atol)
            out.append(None if why is None else f"{model} sample {i}: {why}")
        return out


@pytest.fixture(scope="session")
def settings(suite_settings: dict[str, Any]) -> Settings:
    return Settings(suite_settings)


@pytest.fixture(scope="session")
def log_root() -> Path:
    """Where LoadGen's logs go: the runner points ``LEAPFROG_ARTIFACTS`` at the report's artifacts/<target>."""
    return artifacts_root() / "serving"


@pytest.fixture(scope="session")
def golden() -> Golden:
    meta = json.loads((HERE / "golden" / "meta.json").read_text(encoding="utf-8"))
    with np.load(HERE / "golden" / "serving.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return Golden(inputs=arrays.pop("inputs"), outputs=arrays, atol=float(meta["atol"]))


# ----------------------------------------------------------------------------- the server in the target


@dataclasses.dataclass
class Served:
    target: Target
    client: JsonClient
    service: TargetService
    health: dict[str, Any]
    startup_s: float
    address: str  # host:port the host reaches the server at

    def model_status(self, model: str) -> dict[str, Any]:
        status: dict[str, Any] = self.health.get("models", {}).get(model, {"ok": False, "error": "not reported"})
        return status

    def infer(self, model: str, inputs: np.ndarray) -> Any:
        return self.client.post(f"/v1/models/{model}/infer", {"inputs": inputs.tolist()})["outputs"]


@pytest.fixture(scope="session")
def served(target: Target, settings: Settings) -> Iterator[Served]:
    made = target.run(["mktemp", "-d", "/tmp/leapfrog-serving.XXXXXXXX"], timeout=120)
    assert made.ok, f"mktemp failed in the target: {made.stderr.strip()}"
    folder = made.stdout.strip()
    bind, port = listen_address(target)
    lifetime = settings.number("server_lifetime_s")
    try:
        target.put(HERE / "server.py", f"{folder}/server.py")
        target.put(HERE / "models", f"{folder}/models")
        argv = [
            target.config.python,
            f"{folder}/server.py",
            "--host",
            bind,
            "--port",
            str(port),
            "--models",
            f"{folder}/models",
            "--pid-file",
            f"{folder}/server.pid",
            "--port-file",
            f"{folder}/server.port",
            "--threads",
            str(settings.integer("server_threads")),
            "--max-lifetime",
            str(lifetime),
        ]
        env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        service = TargetService(target, argv, pid_file=f"{folder}/server.pid", timeout=lifetime + 60, env=env)
        service.start()
        client: JsonClient | None = None
        try:
            timeout = settings.number("startup_timeout_s")
            text = wait_until(service, lambda: service.read(f"{folder}/server.port"), timeout=timeout, what="listening")
            host, host_port = target.forward(int(text.strip()))
            http = JsonClient(
                f"http://{host}:{host_port}",
                timeout=settings.number("request_timeout_s"),
                connections=settings.integer("workers"),
            )
            client = http
            left = max(10.0, timeout - (time.monotonic() - service.started_at))
            health = wait_until(service, lambda: http.reachable("/health"), timeout=left, what="healthy", poll=0.5)
            yield Served(
                target=target,
                client=http,
                service=service,
                health=health,
                startup_s=time.monotonic() - service.started_at,
                address=f"{host}:{host_port}",
            )
        finally:
            if client is not None:
                client.close()
            service.stop()
    finally:
        target.run(["rm", "-rf", folder], timeout=120)


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest, served: Served) -> str:
    """Each model the server was asked to load; one that could not load is a failure,
    or a skip when its runtime package is missing on this target's distribution."""
    name: str = request.param
    status = served.model_status(name)
    if not status.get("ok"):
        missing = {p for p in os.environ.get("LEAPFROG_MISSING_PACKAGES", "").split(",") if p}
        lacking = [p for p in missing if any(r in p for r in RUNTIME_PACKAGES[name])]
        if lacking:
            pytest.skip(f"{name}: runtime package not available for this target: {', '.join(lacking)}")
        pytest.fail(f"the server could not load model {name}: {status.get('error')}")
    return name


# ----------------------------------------------------------------------------- driving LoadGen


def scenario_settings(settings: Settings, scenario: str, *, expected_qps: float = 0.0) -> ScenarioSettings:
    """The suite's ``[settings]`` for one LoadGen scenario."""
    key = SNAKE[scenario]
    common: dict[str, Any] = {
        "scenario": scenario,
        "min_duration_ms": settings.integer(f"{key}_min_duration_ms"),
        "min_query_count": settings.integer(f"{key}_min_query_count"),
        "workers": settings.integer("workers"),
    }
    if scenario == "SingleStream":
        return ScenarioSettings(**common, max_duration_ms=settings.integer("single_stream_max_duration_ms"))
    if scenario == "Server":
        return ScenarioSettings(
            **common,
            max_duration_ms=settings.integer("server_max_duration_ms"),
            target_qps=settings.number("server_target_qps"),
            target_latency_ms=settings.number("server_target_latency_ms"),
        )
    return ScenarioSettings(**common, expected_qps=expected_qps, batch_size=settings.integer("offline_batch_size"))


def measure_batch_qps(
    served: Served, golden: Golden, model: str, batch: int, workers: int, *, seconds: float = 1.0
) -> float:
    """Samples per second the server answers with ``workers`` batches of ``batch`` always in flight.

    One warm-up request per worker, then each worker sends back to back for about
    ``seconds`` (no barrier between rounds, as under LoadGen's Offline query).
    """
    n = len(golden.inputs)
    chunks = [golden.inputs[(np.arange(batch) + i * batch) % n] for i in range(workers)]

    def until(deadline: float, chunk: np.ndarray) -> int:
        sent = 0
        while sent == 0 or time.perf_counter() < deadline:
            served.infer(model, chunk)
            sent += 1
        return sent

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda x: served.infer(model, x), chunks))
        start = time.perf_counter()
        sent = sum(pool.map(lambda x: until(start + seconds, x), chunks))
        return sent * batch / (time.perf_counter() - start)


def drive(
    served: Served, golden: Golden, model: str, scenario: ScenarioSettings, metrics: Metrics, log_root: Path
) -> ScenarioResult:
    """Run one LoadGen scenario against ``model``, record its metrics, fail on any wrong answer."""

    def handler(indices: Sequence[int]) -> list[str | None]:
        rows = served.infer(model, golden.inputs[list(indices)])
        return golden.check(model, indices, rows)

    prefix = f"{model}_{SNAKE[scenario.scenario]}"
    log_dir = log_root / f"{model}-{scenario.scenario}"
    result = run_scenario(scenario, len(golden.inputs), handler, log_dir)
    latency = scenario.scenario != "Offline"  # Offline latencies run from the start of the one big query
    metrics.update(result.metrics(prefix, latencies=latency))
    metrics[f"{prefix}_wall_s"] = round(result.wall, 3)
    if result.errors:
        why = f"{result.errors} of {result.samples} answers were wrong or failed (tolerance {golden.atol:g}):\n"
        why += "\n".join(result.error_examples)
        if not served.service.running:
            why += f"\nThe server has ended:\n{served.service.log()}"
        pytest.fail(why)
    problems = result.cross_check()
    assert not problems, "LoadGen's summary disagrees with the SUT's own timings:\n" + "\n".join(problems)
    return result
