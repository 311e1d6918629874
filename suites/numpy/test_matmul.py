"""matmul, dot and einsum across float16/32/64, complex and integer types."""

from __future__ import annotations

import numpy as np
import numpy_recipes as r
import pytest
from conftest import Metrics, assert_close, assert_same, load_golden, timed

MATMUL = load_golden("matmul")
EINSUM = load_golden("einsum")
MATMUL_IN = {k.removeprefix("in."): v for k, v in MATMUL.items() if k.startswith("in.")}
EINSUM_IN = {k.removeprefix("in."): v for k, v in EINSUM.items() if k.startswith("in.")}

K = r.MATMUL_SHAPE[1]


def float_atol(dtype: str) -> float:
    """Error bound of a K-term dot product, K*u*sum|a||b| (u = eps/2), with sum|a||b| <= K for inputs in [-1, 1].

    Any summation order (BLAS blocking, SIMD width, FMA) stays inside it.
    """
    eps = float(np.finfo(dtype).eps)
    return K * eps / 2 * K * (2 if np.dtype(dtype).kind == "c" else 1)


@pytest.mark.parametrize("dtype", r.MATMUL_DTYPES)
def test_matmul(dtype: str, metrics: Metrics) -> None:
    result = r.matmul(MATMUL_IN, dtype)
    for key, value in result.items():
        golden = MATMUL[f"{dtype}.{key}"]
        assert value.dtype == golden.dtype, f"{key}: dtype {value.dtype}, golden {golden.dtype}"
        if value.dtype.kind in "iu":
            # Integer products and sums wrap modulo 2**bits: exact on every target.
            assert_same(key, value, golden, metrics=metrics)
        else:
            assert_close(key, value, golden, rtol=0, atol=float_atol(dtype), metrics=metrics)


@pytest.mark.parametrize("expr", list(r.EINSUM_EXPRS))
def test_einsum(expr: str, metrics: Metrics) -> None:
    for dtype in r.EINSUM_DTYPES:
        golden = EINSUM[f"{expr}.{dtype}"]
        for optimize in (False, True):
            value = r.einsum(EINSUM_IN, expr, dtype, optimize=optimize)
            name = f"{dtype}.{'opt' if optimize else 'plain'}"
            assert value.dtype == golden.dtype, f"{name}: dtype {value.dtype}, golden {golden.dtype}"
            # Operands are multiples of 1/4 with |x| <= 2.25: every partial sum is a
            # multiple of 1/64 below 2**9, exact in float32, so all types match bit for bit.
            assert_same(name, value, golden, metrics=metrics)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_speed(dtype: str, bench_repeats: int, metrics: Metrics) -> None:
    a, b = r.bench_operands(dtype)
    median, p90 = timed(lambda: a @ b, bench_repeats)
    n = r.BENCH_N
    metrics["median_ms"] = round(median, 4)
    metrics["p90_ms"] = round(p90, 4)
    metrics["gflops"] = round(2 * n**3 / (median / 1000) / 1e9, 3)
    # Dyadic operands: the product is exact whatever the summation order.
    assert_same("product", a @ b, MATMUL["bench"].astype(dtype), metrics=metrics)
