"""numpy: readings to int64 arrays, where missing readings are NaN."""

from __future__ import annotations

import numpy as np


def to_int64(values: list[float]) -> np.ndarray:
    """Cast float readings to int64 as numpy does (C's cast: NaN has no defined result)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(values, dtype=np.float64).astype(np.int64)


def missing_marker() -> int:
    """The integer a missing (NaN) reading becomes after the cast, on this machine."""
    return int(to_int64([float("nan")])[0])
