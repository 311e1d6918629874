import numpy as np
from numcast.arrays import missing_marker, to_int64


def test_finite_values_truncate_toward_zero() -> None:
    assert to_int64([1.9, -1.9, 0.0]).tolist() == [1, -1, 0]


def test_nan_becomes_int64_min() -> None:
    """Written on x86-64, where cvttsd2si turns NaN into INT64_MIN; riscv64's fcvt.l.d gives INT64_MAX."""
    assert missing_marker() == np.iinfo(np.int64).min
