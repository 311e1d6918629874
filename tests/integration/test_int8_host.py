"""The onnxruntime suite on an x86-64 host without VNNI, for real: the host's Python on qemu-x86_64 -cpu Haswell.

QEMU's TCG emulates AVX2 and FMA but neither AVX-512 nor VNNI, so onnxruntime
takes the u8 x s8 kernels of an AVX2-only CPU (the AMD EPYC of issue 11) and
gets that host's int8 answer (logits off by 90.3 from the VNNI golden).  The
suite must still pass: the golden comparisons of the int8 model are xfailed
with their reason and measured errors; what does not depend on the host passes.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.conftest import leapfrog

pytestmark = [pytest.mark.integration]

GOLDEN_CASES = ("test_golden[quant]", "test_session_options[quant]", "test_optimized_model_roundtrip[quant]")
HOST_FREE_CASES = ("test_batch_consistency[quant]", "test_latency[quant]", "test_reference_evaluator[quant]")


@pytest.fixture(scope="module")
def haswell_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    qemu = shutil.which("qemu-x86_64-static")
    if platform.machine() != "x86_64" or qemu is None:
        pytest.skip("needs an x86-64 host with qemu-x86_64-static (qemu-user-static)")
    probe = subprocess.run([sys.executable, "-c", "import onnxruntime, onnx"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"{sys.executable} has no onnxruntime and onnx (pip install onnxruntime onnx)")
    work = tmp_path_factory.mktemp("haswell")
    python = work / "python-haswell"
    python.write_text(f'#!/bin/sh\nexec {qemu} -cpu Haswell {sys.executable} "$@"\n', encoding="utf-8")
    python.chmod(0o755)
    (work / "targets").mkdir()
    (work / "targets" / "haswell.toml").write_text(
        f'kind = "native"\ndescription = "x86-64 without VNNI (qemu -cpu Haswell)"\npython = "{python}"\n',
        encoding="utf-8",
    )
    out = work / "out"
    done = leapfrog(
        "--targets-dir", str(work / "targets"), "run", "-t", "haswell", "-s", "onnxruntime",
        "--out", str(out), "--no-history",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return data


def cases(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (cell,) = data["cells"]
    return {c["name"].split("::")[-1]: c for c in cell["cases"]}


def test_the_suite_passes_on_a_host_without_vnni(haswell_report: dict[str, Any]) -> None:
    (cell,) = haswell_report["cells"]
    assert cell["verdict"] == "compatible", cell["message"]
    for name, case in cases(haswell_report).items():
        assert case["status"] in ("passed", "xfailed"), (name, case["message"][:1000])


def test_the_int8_golden_cases_are_xfailed_with_reason_and_numbers(haswell_report: dict[str, Any]) -> None:
    got = cases(haswell_report)
    for name in GOLDEN_CASES:
        case = got[name]
        assert case["status"] == "xfailed", (name, case["message"][:1000])
        message = case["message"]
        for words in ("host difference, not a port bug", "VNNI", "vpmaddubsw", "reduce_range", "gave 32767"):
            assert words in message, (name, words, message[:1000])
        errors = [v for k, v in case["metrics"].items() if k.endswith("logits.max_abs_err")]
        assert errors, (name, case["metrics"])
        assert min(errors) > 1.0  # the difference is in the report, measured (90.3 on QEMU 7.2's Haswell)
        assert case["metrics"]["host_difference"].startswith("host difference, not a port bug")


def test_what_does_not_depend_on_the_host_still_passes(haswell_report: dict[str, Any]) -> None:
    got = cases(haswell_report)
    for name in HOST_FREE_CASES:
        assert got[name]["status"] == "passed", (name, got[name]["message"][:1000])
    latency = got["test_latency[quant]"]["metrics"]
    assert latency["median_ms"] > 0
    assert latency["quant.logits.max_abs_err"] > 1.0  # recorded, not held against the latency case
    for model in ("mlp", "cnn", "transformer"):
        assert got[f"test_golden[{model}]"]["status"] == "passed"
