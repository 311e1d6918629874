"""Shared helpers for the scikit-learn suite.

Golden files live in ``golden/`` and are written by ``make_golden.py`` on a
native x86-64 host with the same scikit-learn, numpy and scipy versions as the
image. Every numeric comparison goes through ``assert_close`` or
``assert_same`` (``leapfrog_checks``, which leapfrog puts next to its probe in
the target, with ``leapfrog_suite``), which record the error as metrics and fail with the numbers in the
message.

The ``metrics`` fixture comes from the harness probe plugin, not from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import leapfrog_checks
import leapfrog_suite
import numpy as np
import pytest
from leapfrog_checks import assert_close, assert_same
from leapfrog_suite import Metrics, arch, bench_repeats, settings, timed

__all__ = [
    "GOLDEN",
    "Metrics",
    "arch",
    "assert_close",
    "assert_same",
    "bench_repeats",
    "golden_meta",
    "load_golden",
    "settings",
    "timed",
]

GOLDEN = Path(__file__).parent / "golden"


def load_golden(name: str) -> dict[str, np.ndarray]:
    """All arrays of ``golden/<name>.npz``."""
    return leapfrog_checks.load_golden(GOLDEN, name)


def golden_meta() -> dict[str, Any]:
    return leapfrog_suite.golden_meta(GOLDEN)


@pytest.fixture(scope="session", autouse=True)
def _single_thread() -> Any:
    """BLAS and OpenMP on one thread, as when the goldens were made (scikit-learn depends on threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def versions_metrics(metrics: Metrics) -> None:
    """Record this target's and the golden's scikit-learn / numpy / scipy versions."""
    import scipy
    import sklearn

    meta = golden_meta()
    metrics["sklearn"] = sklearn.__version__
    metrics["golden_sklearn"] = meta["scikit-learn"]
    metrics["numpy"] = np.__version__
    metrics["golden_numpy"] = meta["numpy"]
    metrics["scipy"] = scipy.__version__
    metrics["golden_scipy"] = meta["scipy"]
