"""The serving suite for real: a model server in native and riscv64 (qemu-user) targets under LoadGen."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.images import CachedImage
from tests.integration.conftest import ROOT, leapfrog

pytestmark = [pytest.mark.integration, pytest.mark.chroot]

TARGETS = ("native", "debian-trixie-riscv64")
MODELS = ("mlp", "convnet")
#: A shorter profile than suite.toml's.  The Server run keeps its 460 queries: fewer can
#: never be VALID at p99 (LoadGen's early stopping needs about 460 with none over the bound).
SHORT = {
    "single_stream_min_duration_ms": "1000",
    "offline_min_duration_ms": "1000",
    "server_target_qps": "20.0",
}


def short_suite(folder: Path, settings: dict[str, str] = SHORT) -> Path:
    """A copy of suites/serving with ``settings`` changed; returns the suites folder."""
    suites = folder / "suites"
    shutil.copytree(ROOT / "suites" / "serving", suites / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    toml = suites / "serving" / "suite.toml"
    text = toml.read_text()
    for key, value in settings.items():
        text, n = re.subn(rf"^{key} = [^#\n]*", f"{key} = {value}  ", text, flags=re.MULTILINE)
        assert n == 1, f"suite.toml has no setting {key}"
    toml.write_text(text)
    return suites


def run_serving(work: Path, targets: tuple[str, ...], settings: dict[str, str]) -> dict[str, Any]:
    """``leapfrog run`` of the serving suite (with ``settings``) on ``targets``; its results.json."""
    done = leapfrog(
        "--suites-dir",
        str(short_suite(work, settings)),
        "run",
        *(a for t in targets for a in ("--target", t)),
        "--suite",
        "serving",
        "--out",
        str(work / "report"),
        "--no-history",
    )
    print(done.stdout, done.stderr[-5000:])
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads((work / "report" / "results.json").read_text())
    data["_out"] = (work / "report").resolve()
    return data


@pytest.fixture(scope="module")
def serving_run(debian_image: CachedImage, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_serving(tmp_path_factory.mktemp("serving"), TARGETS, SHORT)


def cell_metrics(run: dict[str, Any], target: str) -> dict[str, Any]:
    (cell,) = [c for c in run["cells"] if c["target"] == target]
    bad = [f"{c['name']}: {c['status']}\n{c['message'][:2000]}" for c in cell["cases"] if c["status"] != "passed"]
    assert cell["verdict"] == "compatible", "\n".join(bad) or cell["message"]
    merged: dict[str, Any] = {}
    for case in cell["cases"]:
        merged.update(case["metrics"])
    return merged


@pytest.mark.parametrize("target", TARGETS)
def test_every_case_passes_and_answers_are_golden(serving_run: dict[str, Any], target: str) -> None:
    m = cell_metrics(serving_run, target)
    assert m["server_machine"] == ("x86_64" if target == "native" else "riscv64")
    for model in MODELS:
        assert m[f"{model}_max_abs_err"] <= m[f"{model}_atol"]
        for scenario in ("single_stream", "server", "offline"):
            assert m[f"{model}_{scenario}_errors"] == 0
            assert m[f"{model}_{scenario}_samples"] >= m[f"{model}_{scenario}_min_query_count"]
            logs = Path(m[f"{model}_{scenario}_log"])
            assert logs.is_relative_to(serving_run["_out"] / "artifacts" / target)
            assert (logs / "mlperf_log_summary.txt").is_file()
            assert (logs / "mlperf_log_detail.txt").is_file()


@pytest.mark.parametrize("target", TARGETS)
def test_single_stream_latencies(serving_run: dict[str, Any], target: str) -> None:
    m = cell_metrics(serving_run, target)
    for model in MODELS:
        p = f"{model}_single_stream"
        assert 0 < m[f"{p}_p50_ms"] <= m[f"{p}_p90_ms"] <= m[f"{p}_p99_ms"]
        assert m[f"{p}_valid"] is True
        assert m[f"{p}_qps"] > 0
        assert m[f"{p}_min_duration_ms"] == int(SHORT["single_stream_min_duration_ms"])


@pytest.mark.parametrize("target", TARGETS)
def test_server_scenario_is_valid_at_the_target_rate(serving_run: dict[str, Any], target: str) -> None:
    m = cell_metrics(serving_run, target)
    for model in MODELS:
        p = f"{model}_server"
        assert m[f"{p}_valid"] is True
        assert 0 < m[f"{p}_p50_ms"] <= m[f"{p}_p99_ms"] <= m[f"{p}_target_latency_ms"]
        assert m[f"{p}_target_qps"] == float(SHORT["server_target_qps"])
        # Poisson arrivals: the completed rate is the target rate, give or take the draw.
        assert 0.7 * m[f"{p}_target_qps"] <= m[f"{p}_qps"] <= 1.3 * m[f"{p}_target_qps"]


@pytest.mark.parametrize("target", TARGETS)
def test_offline_throughput_beats_one_at_a_time(serving_run: dict[str, Any], target: str) -> None:
    m = cell_metrics(serving_run, target)
    for model in MODELS:
        assert m[f"{model}_offline_valid"] is True
        assert m[f"{model}_offline_expected_qps"] > 0
        # Batches of offline_batch_size with several in flight serve more samples per second.
        assert m[f"{model}_offline_qps"] > m[f"{model}_single_stream_qps"]


def test_emulated_target_is_slower_than_native(serving_run: dict[str, Any]) -> None:
    native = cell_metrics(serving_run, "native")
    riscv = cell_metrics(serving_run, "debian-trixie-riscv64")
    for model in MODELS:
        assert riscv[f"{model}_single_stream_p50_ms"] > native[f"{model}_single_stream_p50_ms"]
        assert riscv[f"{model}_offline_qps"] < native[f"{model}_offline_qps"]


# --------------------------------------------------------------------------- docker and qemu-vm

#: The same suite on a container (a published port) and a VM (an SSH tunnel).  Shorter
#: still: the Server scenario is measured and reported but its validity not required
#: (100 queries cannot satisfy LoadGen's early stopping at p99; see SHORT).
ELSEWHERE = ("debian-trixie-riscv64-docker", "debian-trixie-riscv64-vm")
QUICK = {
    **SHORT,
    "server_target_qps": "10.0",
    "server_min_query_count": "100",
    "server_require_valid": "false",
}


@pytest.fixture(scope="module")
def serving_elsewhere(
    debian_image: CachedImage, engine: object, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    return run_serving(tmp_path_factory.mktemp("serving-elsewhere"), ELSEWHERE, QUICK)


@pytest.mark.docker
@pytest.mark.qemu_vm
@pytest.mark.parametrize("target", ELSEWHERE)
def test_serving_passes_in_a_container_and_a_vm(serving_elsewhere: dict[str, Any], target: str) -> None:
    m = cell_metrics(serving_elsewhere, target)
    assert m["server_machine"] == "riscv64"
    host, _, _port = str(m["server_address"]).rpartition(":")
    assert host == "127.0.0.1"  # docker publishes on loopback only; the VM is reached through an SSH tunnel
    for model in MODELS:
        assert m[f"{model}_max_abs_err"] <= m[f"{model}_atol"]
        for scenario in ("single_stream", "server", "offline"):
            assert m[f"{model}_{scenario}_errors"] == 0
            assert m[f"{model}_{scenario}_samples"] >= m[f"{model}_{scenario}_min_query_count"]
            assert m[f"{model}_{scenario}_qps"] > 0
            assert Path(m[f"{model}_{scenario}_log"]).is_relative_to(serving_elsewhere["_out"] / "artifacts" / target)
        assert 0 < m[f"{model}_single_stream_p50_ms"] <= m[f"{model}_single_stream_p99_ms"]
        assert 0 < m[f"{model}_server_p50_ms"] <= m[f"{model}_server_p99_ms"]
        assert m[f"{model}_single_stream_valid"] is True
        assert isinstance(m[f"{model}_server_valid"], bool)  # reported either way (not required here)
