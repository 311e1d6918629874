"""Reductions over arrays holding NaN (and an all-NaN row), float32 and float64."""

from __future__ import annotations

import warnings

import numpy as np
import numpy_recipes as r
import pytest
from conftest import Metrics, assert_close, assert_same, load_golden

GOLDEN = load_golden("reductions")
INPUTS = {k.removeprefix("in."): v for k, v in GOLDEN.items() if k.startswith("in.")}

# NaN placement must match exactly (assert_close checks it). Values: sums of at
# most 9 O(10) terms, or pairwise sums of 100003 terms in [0, 1); the order of
# additions may differ with SIMD width, so allow a few ulps of the result:
# float64 rtol 1e-13, float32 rtol 2e-6 (long float32 sums: 1e-5, error ~ log2(n) ulps).
RTOL = {"float64": 1e-13, "float32": 2e-6}


@pytest.mark.parametrize("dtype", r.REDUCTION_DTYPES)
@pytest.mark.parametrize("op", list(r.REDUCTIONS))
def test_reduction(op: str, dtype: str, metrics: Metrics) -> None:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices warn; the NaN result is what is compared
        result = r.REDUCTIONS[op](INPUTS, dtype)
    for key, value in result.items():
        golden = GOLDEN[f"{dtype}.{op}.{key}"]
        assert value.dtype == golden.dtype, f"{key}: dtype {value.dtype}, golden {golden.dtype}"
        if value.dtype.kind in "iu":
            assert_same(key, value, golden, metrics=metrics)  # arg-reductions: indices are exact
            continue
        rtol = RTOL[dtype] * (5 if op == "long_sum" and dtype == "float32" else 1)
        scale = float(np.nanmax(np.abs(golden))) if np.isfinite(golden).any() else 1.0
        # atol covers cancellation to ~0 in sums of O(10) values: a few ulps of the largest term.
        assert_close(key, value, golden, rtol=rtol, atol=rtol * max(scale, 10.0), metrics=metrics)


def test_nan_propagation_rules(metrics: Metrics) -> None:
    """Which reductions propagate NaN and which skip it; the all-NaN row warns or raises."""
    x = INPUTS["x"]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        got = {
            "max_nan_rows": np.isnan(np.max(x, axis=1)),
            "nanmax_nan_rows": np.isnan(np.nanmax(x, axis=1)),
            "nansum_nan_rows": np.isnan(np.nansum(x, axis=1)),
        }
    want = {
        "max_nan_rows": np.isnan(GOLDEN["float64.max.axis1"]),
        "nanmax_nan_rows": np.isnan(GOLDEN["float64.nanmax.axis1"]),
        "nansum_nan_rows": np.isnan(GOLDEN["float64.nansum.axis1"]),
    }
    for key, value in got.items():
        assert_same(key, value, want[key], metrics=metrics)
    metrics["rows_with_nan"] = int(got["max_nan_rows"].sum())
    with pytest.warns(RuntimeWarning, match="All-NaN slice"):
        np.nanmax(x, axis=1)
    with pytest.raises(ValueError, match="All-NaN slice"):
        np.nanargmax(x, axis=1)
