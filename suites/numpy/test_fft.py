"""numpy.fft (pocketfft) in single and double precision against golden spectra."""

from __future__ import annotations

import numpy as np
import numpy_recipes as r
import pytest
from conftest import Metrics, assert_close, load_golden, timed

GOLDEN = load_golden("fft")
INPUTS = {k.removeprefix("in."): v for k, v in GOLDEN.items() if k.startswith("in.")}

# FFT error grows like eps * log2(n) * ||x||; spectra of these O(1) inputs have
# entries up to ~sqrt(n)*4, so the absolute tolerance is scaled by the largest
# golden magnitude: float64 1e-13 relative to it, float32 2e-6 (a few ulps * log2(64)).
REL_TO_MAX = {"float64": 1e-13, "float32": 2e-6}


@pytest.mark.parametrize("dtype", r.FFT_DTYPES)
@pytest.mark.parametrize("op", list(r.FFT))
def test_fft(op: str, dtype: str, metrics: Metrics) -> None:
    result = r.FFT[op](INPUTS, dtype)
    for key, value in result.items():
        golden = GOLDEN[f"{dtype}.{op}.{key}"]
        assert value.dtype == golden.dtype, f"{key}: dtype {value.dtype}, golden {golden.dtype}"
        atol = REL_TO_MAX[dtype] * float(np.max(np.abs(golden)))
        assert_close(key, value, golden, rtol=0, atol=atol, metrics=metrics)


@pytest.mark.parametrize("dtype", r.FFT_DTYPES)
def test_fft_roundtrip(dtype: str, bench_repeats: int, metrics: Metrics) -> None:
    """ifft(fft(x)) == x and irfft(rfft(x)) == x, and the latency of a 4096-point complex FFT."""
    cdt = np.complex64 if dtype == "float32" else np.complex128
    x = INPUTS["c60"].astype(cdt)
    tol = REL_TO_MAX[dtype] * 10  # two transforms, values O(1)
    assert_close("complex", np.fft.ifft(np.fft.fft(x)), x, rtol=0, atol=tol, metrics=metrics)
    real = INPUTS["r45"].astype(dtype)
    assert_close("real", np.fft.irfft(np.fft.rfft(real), n=45), real, rtol=0, atol=tol, metrics=metrics)
    big = np.tile(x, 70)[:4096]
    median, p90 = timed(lambda: np.fft.fft(big), bench_repeats)
    metrics["fft4096_median_ms"] = round(median, 4)
    metrics["fft4096_p90_ms"] = round(p90, 4)
