"""A model server inside the target, under MLPerf LoadGen load from the host.

Metrics per model (``mlp``: ONNX Runtime, ``convnet``: PyTorch) and scenario:
``<model>_single_stream_p50_ms|p90_ms|p99_ms|qps|valid|errors``,
``<model>_server_p50_ms|p90_ms|p99_ms|qps|valid|errors`` and
``<model>_offline_qps|valid|errors``, plus the LoadGen settings each run used and
the folder of its summary and detail logs (``..._log``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import Golden, Metrics, Served, Settings, drive, measure_batch_qps, scenario_settings

from harness.loadgen import ServingError


def test_server_starts_and_is_healthy(served: Served, metrics: Metrics) -> None:
    health = served.health
    metrics["server_startup_s"] = round(served.startup_s, 3)
    metrics["server_address"] = served.address  # where the host reached it (forwarded port)
    metrics["server_python"] = str(health.get("python", ""))
    metrics["server_machine"] = str(health.get("machine", ""))
    for name, status in sorted(health.get("models", {}).items()):
        metrics[f"{name}_runtime"] = str(status.get("runtime", status.get("error", "")))[:200]
        if "load_s" in status:
            metrics[f"{name}_load_s"] = status["load_s"]
    assert health.get("status") == "ok", health
    assert sorted(health.get("models", {})) == ["convnet", "mlp"], health
    # The server answers again, through the same keep-alive client, once it says it is up.
    assert served.client.get("/health")["pid"] == health["pid"]


def test_answers_match_golden(served: Served, golden: Golden, model: str, metrics: Metrics) -> None:
    """Every golden input, all in one request and then one per request, within the tolerance."""
    n = len(golden.inputs)
    batch = served.infer(model, golden.inputs)
    single = [served.infer(model, golden.inputs[i : i + 1])[0] for i in range(n)]
    want = golden.outputs[model].astype(np.float64)
    metrics[f"{model}_max_abs_err"] = float(np.max(np.abs(np.asarray(batch, dtype=np.float64) - want)))
    metrics[f"{model}_atol"] = golden.atol
    wrong = [w for w in golden.check(model, range(n), batch) + golden.check(model, range(n), single) if w]
    assert not wrong, f"{len(wrong)} answers differ from the x86-64 goldens:\n" + "\n".join(wrong[:10])


def test_bad_requests_are_refused(served: Served) -> None:
    """A wrong shape or an unknown model is a 4xx, not a crash or a made-up answer."""
    for path, body in (
        ("/v1/models/mlp/infer", {"inputs": [[1.0, 2.0]]}),
        ("/v1/models/no-such-model/infer", {"inputs": [[0.0] * 64]}),
    ):
        with pytest.raises(ServingError, match=r" answered 4\d\d"):
            served.client.post(path, body)
    assert served.client.get("/health")["status"] == "ok"  # still serving


def test_single_stream(
    served: Served, golden: Golden, model: str, settings: Settings, metrics: Metrics, log_root: Path
) -> None:
    """One query at a time: the latency of a lone request (p50/p90/p99)."""
    result = drive(served, golden, model, scenario_settings(settings, "SingleStream"), metrics, log_root)
    assert result.summary.percentiles_ns, result.summary.explain()


def test_server(
    served: Served, golden: Golden, model: str, settings: Settings, metrics: Metrics, log_root: Path
) -> None:
    """Poisson arrivals at the target QPS: p99 latency, and LoadGen's VALID/INVALID verdict."""
    result = drive(served, golden, model, scenario_settings(settings, "Server"), metrics, log_root)
    if settings.flag("server_require_valid"):
        assert result.summary.valid, result.summary.explain()


def test_offline(
    served: Served, golden: Golden, model: str, settings: Settings, metrics: Metrics, log_root: Path
) -> None:
    """All samples at once, sent in batches: throughput.

    LoadGen sizes the one query from the expected QPS; with ``offline_expected_qps = 0``
    that is measured just before, and a run that ends before ``min_duration`` (the
    server turned out faster) is repeated once at 1.5x the rate it reached, as
    LoadGen's own recommendation says.
    """
    configured = settings.number("offline_expected_qps")
    expected = configured
    if configured <= 0:
        batch, workers = settings.integer("offline_batch_size"), settings.integer("workers")
        expected = 1.5 * measure_batch_qps(served, golden, model, batch, workers)
    result = drive(
        served, golden, model, scenario_settings(settings, "Offline", expected_qps=expected), metrics, log_root
    )
    runs = 1
    if configured <= 0 and result.summary.unmet() == ["Min duration satisfied"] and result.summary.qps:
        expected = 1.5 * max(expected, result.summary.qps)
        result = drive(
            served, golden, model, scenario_settings(settings, "Offline", expected_qps=expected), metrics, log_root
        )
        runs = 2
    metrics[f"{model}_offline_runs"] = runs
    assert result.summary.qps is not None, result.summary.explain()
    assert result.summary.qps > 0, result.summary.explain()
