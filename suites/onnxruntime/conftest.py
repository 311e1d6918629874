"""Shared helpers for the onnxruntime suite.

The models (``models/*.onnx``) and golden outputs (``golden/*.npz``) are
written by ``make_golden.py`` on a native x86-64 host with VNNI and the image's
onnx / onnxruntime versions. Every numeric comparison goes through
:func:`assert_close` (dtypes must match) or :func:`assert_same` (values, not
bits, must match): ``leapfrog_checks``' own with those options, which record
the error as metrics and fail with the numbers in the message.

The ``metrics`` fixture comes from the harness probe plugin, not from here.

Import order matters on Debian: there python3-onnx and python3-onnxruntime
share one ``libonnx.so.1``, so onnxruntime's own operator schemas land in
onnx's registry, and ``onnx.reference`` refuses to load once they are there.
Importing ``onnx.reference`` first (here, before any test module) keeps the
reference evaluator usable; ``test_packaging.py`` records the clash itself.

The int8 model's answer depends on the host CPU on x86-64: without VNNI,
onnxruntime's u8 x s8 kernels saturate (see
``leapfrog_suite.int8_saturation_reason``), so there it differs from a golden
made on a VNNI host.  :func:`golden_checks` turns that one difference into an
xfail that gives the reason and every error, measured; everything that does
not depend on the host (options, batch, repeats agreeing with each other) is
still checked strictly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import leapfrog_checks
import leapfrog_suite
import numpy as np
import onnx
import onnx.reference  # noqa: F401  (before onnxruntime: see the module docstring)
import onnxruntime as ort
import pytest
from leapfrog_suite import Metrics, arch, bench_repeats, timed
from onnx import TensorProto, helper, numpy_helper

#: Fixtures for the test modules, and what they import (``from conftest import timed``).
__all__ = ["Metrics", "arch", "bench_repeats", "timed"]

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
MODELS_DIR = HERE / "models"
MODELS = ("mlp", "cnn", "transformer", "quant")
#: Models with u8 x s8 integer kernels, whose answer depends on VNNI on x86-64.
INT8_MODELS = ("quant",)
#: How many failure messages an xfail or failure quotes (every error is in the metrics).
MESSAGES_SHOWN = 6
Outputs = dict[str, np.ndarray]

# The optimisation levels a session may run at, by their short names in metrics.
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# Float tolerances against the x86-64 golden. The models are small (K <= 256 terms
# per dot product, values O(1)); float32 kernels on different CPUs and onnxruntime
# versions differ in summation order, fused multiply-add use and the polynomial
# behind exp/erf/tanh, which moves results by a few float32 ulps (observed <= 1e-6 between
# x86-64 and riscv64, and between onnxruntime 1.21 and 1.32).
# A wrong kernel is off by 1e-2 or more.
FLOAT_RTOL = 1e-4
FLOAT_ATOL = 1e-5


def load_golden(name: str) -> dict[str, np.ndarray]:
    """All arrays of ``golden/<name>.npz``."""
    return leapfrog_checks.load_golden(GOLDEN, name)


def golden_meta() -> dict[str, Any]:
    return leapfrog_suite.golden_meta(GOLDEN)


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.onnx"


def golden_outputs(name: str) -> Outputs:
    return {k.removeprefix("out."): v for k, v in load_golden(name).items() if k.startswith("out.")}


def session(
    name: str,
    *,
    level: str = "all",
    intra_threads: int = 0,
    inter_threads: int = 0,
    sequential: bool = True,
    optimized_path: Path | None = None,
) -> ort.InferenceSession:
    """A CPU session for ``models/<name>.onnx`` with the given options (0 threads = onnxruntime's default)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = OPT_LEVELS[level]
    opts.intra_op_num_threads = intra_threads
    opts.inter_op_num_threads = inter_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if sequential else ort.ExecutionMode.ORT_PARALLEL
    if optimized_path is not None:
        opts.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(model_path(name)), sess_options=opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: np.ndarray) -> Outputs:
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {"x": x}), strict=True))


def assert_close(name: str, actual: Any, golden: Any, *, rtol: float, atol: float, metrics: Metrics) -> None:
    """``leapfrog_checks.assert_close`` with ``strict_dtype=True``: the dtype must be the golden's."""
    leapfrog_checks.assert_close(name, actual, golden, rtol=rtol, atol=atol, metrics=metrics, strict_dtype=True)


def assert_same(name: str, actual: Any, golden: Any, *, metrics: Metrics) -> None:
    """``leapfrog_checks.assert_same`` with ``bits=False``: equal values (NaN meets NaN, -0.0 equals 0.0)."""
    leapfrog_checks.assert_same(name, actual, golden, metrics=metrics, bits=False)


def check_outputs(
    label: str, outputs: Outputs, golden: Outputs, *, metrics: Metrics, keys: tuple[str, ...] | None = None
) -> None:
    """Compare every (or the named) output: integers exactly, floats within FLOAT_RTOL/FLOAT_ATOL."""
    for key in keys or tuple(golden):
        if golden[key].dtype.kind in "iu":
            # Integer tensors of the quantized model: integer arithmetic and round-half-to-even
            # requantization are specified exactly by ONNX, so any difference is a wrong answer.
            assert_same(f"{label}.{key}", outputs[key], golden[key], metrics=metrics)
        else:
            assert_close(f"{label}.{key}", outputs[key], golden[key], rtol=FLOAT_RTOL, atol=FLOAT_ATOL, metrics=metrics)


def compare(
    label: str, outputs: Outputs, golden: Outputs, *, metrics: Metrics, keys: tuple[str, ...] | None = None
) -> list[str]:
    """:func:`check_outputs` for every key, recording every error; returns the failure messages."""
    failures = []
    for key in keys or tuple(golden):
        try:
            check_outputs(label, outputs, golden, metrics=metrics, keys=(key,))
        except pytest.fail.Exception as exc:
            failures.append(str(exc))
    return failures


def _u8s8_product() -> tuple[int, int]:
    """(onnxruntime's answer, the exact one) for one u8 x s8 dot product of two terms, 255 * 127 each.

    A kernel that sums the pair in int16 (x86-64 without VNNI) gives 32767.
    """
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])],
        "u8s8_probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])],
        [numpy_helper.from_array(np.full((2, 1), 127, dtype=np.int8), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 10
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"a": np.full((1, 2), 255, dtype=np.uint8)})[0]
    return int(got.flat[0]), 2 * 255 * 127


@functools.cache
def int8_host_difference() -> str | None:
    """Why this host's int8 answers differ from the golden (x86-64 without VNNI), or None."""
    machine = leapfrog_suite.machine()
    if machine != "x86_64":
        return None
    got, exact = _u8s8_product()
    return leapfrog_suite.int8_saturation_reason(
        machine,
        leapfrog_suite.host_cpu_flags(),
        saturates=got != exact,
        measured=f"MatMulInteger of u8 255 by s8 127 over 2 terms gave {got}, exactly {exact}",
    )


def _summary(failures: list[str]) -> str:
    more = len(failures) - MESSAGES_SHOWN
    shown = "\n".join(failures[:MESSAGES_SHOWN])
    return shown + (f"\n... and {more} more (every error is in the metrics)" if more > 0 else "")


@contextlib.contextmanager
def golden_checks(name: str, metrics: Metrics, *, host_difference: str = "xfail") -> Iterator[Callable[..., None]]:
    """Yield ``check(label, outputs, golden, keys=None)``; every error is recorded, and the case fails once at the end.

    When the differences come from the int8 host difference (the ``quant``
    model on x86-64 without VNNI) the case is xfailed with the reason and the
    measured errors (``host_difference="xfail"``), or it is not held against the
    case (``"record"``: for a latency measurement; ``test_golden`` reports it).
    """
    failures: list[str] = []

    def check(label: str, outputs: Outputs, golden: Outputs, keys: tuple[str, ...] | None = None) -> None:
        failures.extend(compare(label, outputs, golden, metrics=metrics, keys=keys))

    yield check
    if not failures:
        return
    reason = int8_host_difference() if name in INT8_MODELS else None
    if reason is None:
        pytest.fail(_summary(failures))
    metrics["host_difference"] = reason
    if host_difference == "xfail":
        pytest.xfail(f"{reason}\n\n{_summary(failures)}")
