"""numpy.linalg against golden results computed on x86-64 (same numpy, reference LAPACK)."""

from __future__ import annotations

import numpy as np
import numpy_recipes as r
import pytest
from conftest import Metrics, assert_close, assert_same, load_golden

GOLDEN = load_golden("linalg")
INPUTS = {k.removeprefix("in."): v for k, v in GOLDEN.items() if k.startswith("in.")}

# Tolerances: the inputs are well conditioned (cond < 100), so backward-stable
# LAPACK routines agree to a few hundred ulps whatever the BLAS (reference on
# Debian, OpenBLAS in pip wheels), blocking or FMA contraction.
#   float64: eps 2.2e-16 -> rtol 1e-10, atol 1e-12 (entries are O(1))
#   float32: eps 1.2e-7  -> rtol 2e-4,  atol 2e-5
TOL = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 2e-4, "atol": 2e-5}}


@pytest.mark.parametrize("dtype", r.LINALG_DTYPES)
@pytest.mark.parametrize("op", list(r.LINALG))
def test_linalg(op: str, dtype: str, metrics: Metrics) -> None:
    x = r.linalg_cast(INPUTS, dtype)
    result = r.LINALG[op](x)
    prefix = f"{dtype}.{op}."
    expected = {k.removeprefix(prefix): v for k, v in GOLDEN.items() if k.startswith(prefix)}
    assert sorted(result) == sorted(expected), f"{op}: outputs {sorted(result)} vs golden {sorted(expected)}"
    for key, value in result.items():
        assert value.dtype == expected[key].dtype, f"{op}.{key}: dtype {value.dtype}, golden {expected[key].dtype}"
        if value.dtype.kind in "iub":
            assert_same(f"{op}.{key}", value, expected[key], metrics=metrics)  # ranks and signs are exact
        else:
            assert_close(f"{op}.{key}", value, expected[key], metrics=metrics, **TOL[dtype])


@pytest.mark.parametrize("dtype", r.LINALG_DTYPES)
def test_linalg_identities(dtype: str, metrics: Metrics) -> None:
    """Residuals that hold whatever the golden says: A x = b, A A^-1 = I, L L^T = A, Q R = A."""
    x = r.linalg_cast(INPUTS, dtype)
    a, spd, tall = x["general"], x["spd"], x["tall"]
    q, rr = np.linalg.qr(tall)
    lower = np.linalg.cholesky(spd)
    w, v = np.linalg.eigh(spd)
    u, s, vh = np.linalg.svd(tall, full_matrices=False)
    # Residuals are compared to zero with the same tolerance as the golden comparisons, scaled by ||A||.
    scale = float(np.linalg.norm(a)) + float(np.linalg.norm(spd))
    atol = TOL[dtype]["atol"] * scale * 10
    residuals = {
        "solve": (a @ np.linalg.solve(a, x["rhs"]) - x["rhs"], atol),
        "inv": (a @ np.linalg.inv(a) - np.eye(8, dtype=dtype), atol),
        "cholesky": (lower @ lower.T - spd, atol * 10),  # ||spd|| is ~10x ||a||
        "qr": (q @ rr - tall, atol),
        "eigh": (spd @ v - v * w, atol * 10),
        "svd": ((u * s) @ vh - tall, atol),
    }
    for name, (residual, tol) in residuals.items():
        assert_close(f"{name}_residual", residual, np.zeros_like(residual), rtol=0, atol=tol, metrics=metrics)
