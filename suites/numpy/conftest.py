"""Shared helpers for the numpy suite.

Golden files live in ``golden/`` and are written by ``make_golden.py`` on a
native x86-64 host with the same numpy version as the image. Every numeric comparison goes through ``assert_close`` or
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
