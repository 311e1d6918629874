"""The serving suite's host-side helpers (harness.loadgen) and its committed models and goldens.

Summaries under data/loadgen/ were written by MLPerf LoadGen 6.0 itself.  The
LoadGen tests run the real bindings against an in-process handler for a fraction
of a second each; the service tests start real processes on the native target.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.config import TargetConfig
from harness.loadgen import (
    ScenarioResult,
    ScenarioSettings,
    ServingError,
    Summary,
    TargetService,
    golden_mismatch,
    listen_address,
    max_abs_error,
    parse_summary,
    percentile,
    run_scenario,
    wait_until,
)
from harness.targets.native import NativeTarget

DATA = Path(__file__).parent / "data" / "loadgen"
SUITE = Path(__file__).resolve().parents[2] / "suites" / "serving"


def summary(name: str) -> Summary:
    return parse_summary((DATA / name).read_text())


# ----------------------------------------------------------------------------- percentile


def test_percentile_indexes_like_loadgen() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert percentile(values, 0.5) == 51.0  # sorted[int(100 * 0.5)]
    assert percentile(values, 0.9) == 91.0
    assert percentile(values, 0.99) == 100.0
    assert percentile(values, 0.0) == 1.0
    assert percentile([7.0], 0.99) == 7.0


def test_percentile_of_54_samples_is_the_max_at_p99() -> None:
    # The Server summary in data/ has 54 queries and reports p99 == max: 54 * 0.99 -> index 53.
    s = summary("server_invalid_early_stopping.txt")
    assert s.percentiles_ns[99.0] == s.max_ns
    assert percentile([float(i) for i in range(54)], 0.99) == 53.0


@pytest.mark.parametrize("p", [-0.1, 1.0, 2.0])
def test_percentile_rejects_out_of_range(p: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0, 2.0], p)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


# ----------------------------------------------------------------------------- summary parsing


def test_parse_server_valid() -> None:
    s = summary("server_valid.txt")
    assert (s.scenario, s.mode, s.result) == ("Server", "PerformanceOnly", "VALID")
    assert s.valid
    assert s.unmet() == []
    assert s.qps == pytest.approx(14.77)  # "Completed samples per second", not the scheduled rate
    assert sorted(s.percentiles_ns) == [50.0, 90.0, 95.0, 97.0, 99.0, 99.9]
    assert s.latency_ms(99.0) == pytest.approx(87.111877)
    assert s.min_ns is not None
    assert s.max_ns is not None
    assert s.min_ns <= s.percentiles_ns[50.0] <= s.percentiles_ns[99.0] <= s.max_ns
    assert s.early_stopping == ["Run successful."]
    assert not s.errors


def test_parse_server_invalid_explains_early_stopping() -> None:
    s = summary("server_invalid_early_stopping.txt")
    assert s.result == "INVALID"
    assert not s.valid
    assert s.unmet() == ["Early stopping satisfied"]
    assert s.constraints["Performance constraints satisfied"]
    assert s.early_stopping[0] == "Run unsuccessful."
    # A bullet continued over several lines is one entry.
    assert any("405 more queries" in line and "under latency" in line for line in s.early_stopping)
    text = s.explain()
    assert "INVALID" in text
    assert "not satisfied: Early stopping satisfied" in text


def test_parse_offline_invalid_keeps_the_recommendation() -> None:
    s = summary("offline_invalid_duration.txt")
    assert (s.scenario, s.result) == ("Offline", "INVALID")
    assert s.unmet() == ["Min duration satisfied"]
    assert s.qps == pytest.approx(679.258)  # "Samples per second"
    assert len(s.recommendations) == 1
    assert "expected QPS" in s.recommendations[0]


def test_parse_single_stream() -> None:
    s = summary("single_stream_valid.txt")
    assert (s.scenario, s.result) == ("SingleStream", "VALID")
    assert s.qps == pytest.approx(185.38)  # "QPS w/ loadgen overhead"
    # The headline "90.0th percentile" line is not mistaken for the table's 90.00 percentile.
    assert s.percentiles_ns[90.0] == 5220755
    assert len(s.early_stopping) == 4


def test_parse_errors_and_missing_fields() -> None:
    text = textwrap.dedent("""\
        ================================================
        MLPerf Results Summary
        ================================================
        Scenario : Server
        Mode     : PerformanceOnly
        2 ERRORS encountered. See detailed log.
        """)
    s = parse_summary(text)
    assert s.errors
    assert s.result == ""
    assert not s.valid
    assert s.qps is None
    assert s.percentiles_ns == {}
    assert s.latency_ms(99.0) is None
    assert parse_summary("").scenario == ""


# ----------------------------------------------------------------------------- golden checks


def test_max_abs_error() -> None:
    want = np.array([[1.0, -2.0], [3.0, 4.0]], dtype=np.float32)
    assert max_abs_error(want.tolist(), want) == 0.0
    assert max_abs_error([[1.0, -2.0], [3.0, 4.5]], want) == pytest.approx(0.5)
    assert math.isinf(max_abs_error([[1.0, -2.0]], want))  # a row missing
    assert math.isinf(max_abs_error([[1.0, float("nan")], [3.0, 4.0]], want))
    assert math.isinf(max_abs_error([["x", 1.0], [3.0, 4.0]], want))  # type: ignore[list-item]
    assert max_abs_error([], np.zeros((0,))) == 0.0


def test_golden_mismatch_uses_the_tolerance() -> None:
    want = np.array([[0.5, 0.25]])
    assert golden_mismatch([[0.5 + 9e-5, 0.25]], want, 1e-4) is None
    why = golden_mismatch([[0.5 + 2e-4, 0.25]], want, 1e-4)
    assert why is not None
    assert "exceeds the tolerance 0.0001" in why
    shape = golden_mismatch([[0.5]], want, 1e-4)
    assert shape is not None
    assert "wrong shape" in shape


# ----------------------------------------------------------------------------- scenario settings and results


def test_scenario_settings_validate() -> None:
    with pytest.raises(ValueError, match="not one of"):
        ScenarioSettings("MultiStream", 100, 10)
    with pytest.raises(ValueError, match="target_qps"):
        ScenarioSettings("Server", 100, 10)
    with pytest.raises(ValueError, match="expected_qps"):
        ScenarioSettings("Offline", 100, 10)
    with pytest.raises(ValueError, match="at least 1"):
        ScenarioSettings("SingleStream", 100, 10, workers=0)
    server = ScenarioSettings("Server", 100, 10, target_qps=5, target_latency_ms=50)
    assert server.chosen() == {
        "min_duration_ms": 100,
        "min_query_count": 10,
        "target_qps": 5,
        "target_latency_ms": 50,
        "latency_percentile": 0.99,
    }


def _result(summary_file: str, latencies_s: list[float], scenario: ScenarioSettings) -> ScenarioResult:
    return ScenarioResult(
        settings=scenario,
        summary=summary(summary_file),
        latencies_s=latencies_s,
        samples=len(latencies_s),
        errors=0,
        error_examples=[],
        wall=1.0,
        log_dir=Path("/logs"),
    )


def test_metrics_and_cross_check() -> None:
    scenario = ScenarioSettings("Server", 5000, 460, target_qps=15, target_latency_ms=1000)
    s = summary("server_valid.txt")
    # Latencies a SUT could have measured inside LoadGen's span: below LoadGen's at every percentile.
    p50, p90 = s.percentiles_ns[50.0] / 1e9, s.percentiles_ns[90.0] / 1e9
    own = [0.9 * p50] * 51 + [0.9 * p90] * 49
    result = _result("server_valid.txt", own, scenario)
    m = result.metrics("mlp_server")
    assert m["mlp_server_p99_ms"] == pytest.approx(87.112, abs=1e-3)
    assert m["mlp_server_qps"] == pytest.approx(14.77)
    assert m["mlp_server_valid"] is True
    assert m["mlp_server_errors"] == 0
    assert m["mlp_server_target_qps"] == 15
    assert m["mlp_server_log"] == "/logs"
    assert "mlp_server_p50_ms" not in result.metrics("mlp_server", latencies=False)
    assert result.cross_check() == []


def test_cross_check_catches_a_misread_unit() -> None:
    scenario = ScenarioSettings("SingleStream", 100, 10)
    s = summary("single_stream_valid.txt")
    # Own latencies 1000x LoadGen's: what reading microseconds as nanoseconds would look like.
    own = [s.percentiles_ns[50.0] / 1e6] * 20
    problems = _result("single_stream_valid.txt", own, scenario).cross_check()
    assert problems
    assert problems[0].startswith("p50:")
    short = _result("single_stream_valid.txt", own, scenario)
    short.samples = 21
    assert "21 samples issued but 20 answered" in short.cross_check()


# ----------------------------------------------------------------------------- real LoadGen, in-process handler


@pytest.fixture
def loadgen() -> Any:
    return pytest.importorskip("mlperf_loadgen", reason="pip install mlcommons-loadgen")


def _echo_handler(delay: float, wrong: set[int] | None = None) -> Any:
    def handler(indices: Any) -> list[str | None]:
        time.sleep(delay)
        return [f"sample {i} wrong" if wrong and i in wrong else None for i in indices]

    return handler


def test_run_scenario_single_stream(loadgen: Any, tmp_path: Path) -> None:
    scenario = ScenarioSettings("SingleStream", 200, 20)
    result = run_scenario(scenario, 8, _echo_handler(0.002), tmp_path / "ss")
    assert result.summary.scenario == "SingleStream"
    assert result.summary.valid, result.summary.explain()
    assert result.errors == 0
    assert result.samples >= 20
    assert len(result.latencies_s) == result.samples
    assert result.summary.latency_ms(50.0) is not None
    assert result.summary.latency_ms(50.0) >= 2.0  # the handler sleeps 2 ms
    assert result.cross_check() == []
    assert sorted(p.name for p in (tmp_path / "ss").iterdir()) == ["mlperf_log_detail.txt", "mlperf_log_summary.txt"]


def test_run_scenario_offline_batches_and_counts_errors(loadgen: Any, tmp_path: Path) -> None:
    batches: list[int] = []

    def handler(indices: Any) -> list[str | None]:
        batches.append(len(indices))
        return [None if i != 3 else "sample 3 wrong" for i in indices]

    scenario = ScenarioSettings("Offline", 50, 40, expected_qps=1000, batch_size=5, workers=2)
    result = run_scenario(scenario, 8, handler, tmp_path / "off")
    assert result.summary.scenario == "Offline"
    assert max(batches) == 5
    assert sum(batches) == result.samples
    assert result.errors == result.samples // 8 + (1 if result.samples % 8 > 3 else 0)  # index 3 of each 8
    assert result.error_examples
    assert set(result.error_examples) == {"sample 3 wrong"}


def test_run_scenario_survives_a_raising_handler(loadgen: Any, tmp_path: Path) -> None:
    def handler(indices: Any) -> list[str | None]:
        raise ConnectionError("server went away")

    result = run_scenario(ScenarioSettings("SingleStream", 50, 10), 4, handler, tmp_path / "boom")
    assert result.errors == result.samples
    assert result.error_examples[0] == "ConnectionError: server went away"


def test_run_scenario_server(loadgen: Any, tmp_path: Path) -> None:
    scenario = ScenarioSettings("Server", 300, 30, target_qps=200, target_latency_ms=100)
    result = run_scenario(scenario, 8, _echo_handler(0.001), tmp_path / "srv")
    assert result.summary.scenario == "Server"
    assert result.summary.qps is not None
    assert result.summary.qps > 0
    assert result.cross_check() == []
    assert result.summary.constraints["Performance constraints satisfied"]


# ----------------------------------------------------------------------------- a service in a target


@pytest.fixture
def native(native_config: TargetConfig) -> NativeTarget:
    return NativeTarget(native_config)


def _script(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "svc.py"
    script.write_text(textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_service_runs_in_the_background_and_stops(native: NativeTarget, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = _script(
        tmp_path,
        f"""
        import os, sys, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("serving", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        time.sleep(120)
        """,
    )
    service = TargetService(native, argv, pid_file=str(pid_file), timeout=60)
    service.start()
    pid = wait_until(service, service.pid, timeout=30, what="started", poll=0.05)
    assert service.running
    done = service.stop(grace=10)
    assert not service.running
    assert done is not None
    assert done.signal == 15  # SIGTERM from the second command
    assert not Path(f"/proc/{pid}").exists()
    log = service.log()
    assert "serving" in log
    assert "to stderr" in log
    assert "signal 15" in log


def test_service_that_ignores_sigterm_is_killed(native: NativeTarget, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = _script(
        tmp_path,
        f"""
        import os, signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
        """,
    )
    service = TargetService(native, argv, pid_file=str(pid_file), timeout=60)
    service.start()
    wait_until(service, service.pid, timeout=30, what="started", poll=0.05)
    done = service.stop(grace=1)
    assert done is not None
    assert done.signal == 9


def test_a_server_that_dies_is_an_error_with_its_log(native: NativeTarget, tmp_path: Path) -> None:
    argv = _script(tmp_path, "import sys\nprint('model file is corrupt', file=sys.stderr)\nsys.exit(3)\n")
    service = TargetService(native, argv, pid_file=str(tmp_path / "pid"), timeout=60)
    service.start()
    with pytest.raises(ServingError, match="ended before healthy") as err:
        wait_until(service, lambda: None, timeout=30, what="healthy", poll=0.05)
    assert "model file is corrupt" in str(err.value)
    assert "exit code 3" in str(err.value)


def test_a_server_that_never_answers_times_out_and_is_stopped(native: NativeTarget, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    argv = _script(
        tmp_path,
        f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("still loading", flush=True)
        time.sleep(120)
        """,
    )
    service = TargetService(native, argv, pid_file=str(pid_file), timeout=60)
    service.start()
    with pytest.raises(ServingError, match=r"not healthy after 1 s") as err:
        wait_until(service, lambda: None, timeout=1, what="healthy", poll=0.1)
    assert "still loading" in str(err.value)
    assert not service.running


def test_listen_address(native: NativeTarget, tmp_path: Path) -> None:
    from harness.config import load_target
    from harness.targets.docker import DockerTarget

    assert listen_address(native) == ("127.0.0.1", 0)
    path = tmp_path / "t-docker.toml"
    path.write_text(
        'kind = "docker"\nnetwork = true\nports = [9000]\n'
        '[image]\ndistro = "debian"\nrelease = "trixie"\narch = "riscv64"\n'
    )
    published = DockerTarget(load_target(path))
    published.requested_ports = [8000]  # a suite's; with the file's 9000, published on the host's loopback
    assert listen_address(published) == ("0.0.0.0", 8000)


# ----------------------------------------------------------------------------- the committed models and goldens


def test_committed_goldens_match_the_committed_models() -> None:
    """The server's own loaders on this host reproduce golden/serving.npz (make_golden.py was re-run)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("serving_server", SUITE / "server.py")
    assert spec is not None
    assert spec.loader is not None
    server = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(server)
    meta = json.loads((SUITE / "golden" / "meta.json").read_text())
    with np.load(SUITE / "golden" / "serving.npz", allow_pickle=False) as data:
        inputs = data["inputs"]
        assert inputs.shape == (meta["samples"], meta["input_dim"])
        for name, load in (("mlp", server.load_mlp), ("convnet", server.load_convnet)):
            run, _runtime = load(SUITE / "models", 1)
            want = data[name]
            assert want.shape == (meta["samples"], meta["output_dim"])
            assert max_abs_error(run(inputs).tolist(), want) <= meta["atol"]
