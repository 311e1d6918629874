"""Random streams: default_rng(seed) and the other bit generators must reproduce the x86-64 stream bit for bit."""

from __future__ import annotations

import numpy as np
import numpy_recipes as r
import pytest
from conftest import Metrics, assert_close, assert_same, load_golden

GOLDEN = load_golden("random")


@pytest.mark.parametrize("bitgen", r.RAW_BIT_GENERATORS)
def test_raw_stream(bitgen: str, metrics: Metrics) -> None:
    assert_same("raw", r.raw_stream(bitgen), GOLDEN[f"raw.{bitgen}"], metrics=metrics)


@pytest.mark.parametrize("name", list(r.RANDOM))
def test_generator_stream(name: str, metrics: Metrics) -> None:
    value = np.asarray(r.RANDOM[name](np.random.default_rng(r.SEED)))
    golden = GOLDEN[f"gen.{name}"]
    if name in r.RANDOM_WITH_LAPACK:
        # The covariance factor comes from an SVD (LAPACK): rounding-level differences only
        # (a few ulps of the O(1) factor), so rtol 1e-10 with atol 1e-12 is far below any real error.
        assert_close(name, value, golden, rtol=1e-10, atol=1e-12, metrics=metrics)
    else:
        assert_same(name, value, golden, metrics=metrics)


def test_legacy_randomstate(metrics: Metrics) -> None:
    """RandomState's stream is frozen by NEP 19: bit-identical everywhere, forever."""
    for key, value in r.legacy_streams().items():
        assert_same(key, value, GOLDEN[f"legacy.{key}"], metrics=metrics)
