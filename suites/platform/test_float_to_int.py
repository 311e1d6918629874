"""Out-of-range and NaN float->integer conversions done by the C library.

These differ by design between architectures, so the cases RECORD what the
target does and only fail if the result is none of the documented behaviours:

* x86-64 (cvtsd2si / cvttsd2si): any NaN or out-of-range input gives the
  "integer indefinite" value INT64_MIN (0x8000000000000000).
* riscv64 (fcvt.l.d): saturates; +out-of-range and NaN give INT64_MAX,
  -out-of-range gives INT64_MIN.
* aarch64 (fcvtzs/fcvtns): saturates; NaN gives 0.

ilogb's special results are glibc per-arch constants: FP_ILOGB0 / FP_ILOGBNAN
are INT_MIN on x86; -INT_MAX / INT_MAX on the generic ports (riscv64).
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

import pytest

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
NAN, INF = float("nan"), float("inf")

SPECIAL_INPUTS = {"nan": NAN, "pos_inf": INF, "neg_inf": -INF, "pos_big": 1e300, "neg_big": -1e300, "pos_2p63": 2.0**63}

CONVERSION_BEHAVIOUR: dict[str, dict[str, int]] = {
    "x86_64": dict.fromkeys(SPECIAL_INPUTS, INT64_MIN),
    "riscv64": {
        "nan": INT64_MAX,
        "pos_inf": INT64_MAX,
        "neg_inf": INT64_MIN,
        "pos_big": INT64_MAX,
        "neg_big": INT64_MIN,
        "pos_2p63": INT64_MAX,
    },
    "aarch64": {
        "nan": 0,
        "pos_inf": INT64_MAX,
        "neg_inf": INT64_MIN,
        "pos_big": INT64_MAX,
        "neg_big": INT64_MIN,
        "pos_2p63": INT64_MAX,
    },
}

FUNCTIONS = {
    "lrint": (ctypes.c_long, ctypes.c_double),
    "llrint": (ctypes.c_longlong, ctypes.c_double),
    "lround": (ctypes.c_long, ctypes.c_double),
    "llround": (ctypes.c_longlong, ctypes.c_double),
    "lrintf": (ctypes.c_long, ctypes.c_float),
    "llroundf": (ctypes.c_longlong, ctypes.c_float),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_special_float_to_int64(name: str, arch: str, libm: ctypes.CDLL, cfunc: Any, metrics: dict[str, Any]) -> None:
    restype, argtype = FUNCTIONS[name]
    func = cfunc(libm, name, restype, argtype)
    # In-range values are exact everywhere (round-half-even vs half-away).
    halfway = {"lrint": 2, "llrint": 2, "lrintf": 2}.get(name, 3)
    assert func(2.5) == halfway
    assert func(-2.5) == -halfway
    assert func(-7.0) == -7
    assert func(2.0**62) == 2**62
    observed = {label: func(value) for label, value in SPECIAL_INPUTS.items()}
    for label, value in observed.items():
        metrics[f"{name}_{label}"] = value
        assert INT64_MIN <= value <= INT64_MAX
    expected = CONVERSION_BEHAVIOUR.get(arch)
    if expected is not None:
        assert observed == expected, f"{arch} {name}: {observed}"
    else:
        for label, value in observed.items():
            assert value in {b[label] for b in CONVERSION_BEHAVIOUR.values()}, (label, value)
    metrics[f"{name}_saturates"] = observed["pos_big"] == INT64_MAX


ILOGB_BEHAVIOUR = {
    "x86_64": {"zero": INT32_MIN, "nan": INT32_MIN, "inf": INT32_MAX},
    "riscv64": {"zero": -INT32_MAX, "nan": INT32_MAX, "inf": INT32_MAX},
}


def test_ilogb_special_values(arch: str, libm: ctypes.CDLL, cfunc: Any, metrics: dict[str, Any]) -> None:
    ilogb = cfunc(libm, "ilogb", ctypes.c_int, ctypes.c_double)
    assert ilogb(1.0) == 0
    assert ilogb(1024.5) == 10
    assert ilogb(5e-324) == -1074
    observed = {"zero": ilogb(0.0), "nan": ilogb(NAN), "inf": ilogb(INF)}
    for label, value in observed.items():
        metrics[f"ilogb_{label}"] = value
    if arch in ILOGB_BEHAVIOUR:
        assert observed == ILOGB_BEHAVIOUR[arch]
    else:
        assert observed["zero"] in (INT32_MIN, -INT32_MAX)
        assert observed["nan"] in (INT32_MIN, INT32_MAX)


def test_python_level_conversions_are_portable() -> None:
    """Python checks before it casts, so these never depend on the CPU."""
    with pytest.raises(ValueError):
        int(NAN)
    with pytest.raises(OverflowError):
        int(INF)
    assert int(1e300) == (1e300).as_integer_ratio()[0]  # exact big int, no C cast
    assert int(2.0**63) == 2**63
    assert int(-(2.0**63)) == INT64_MIN
    with pytest.raises(struct.error):
        struct.pack("<q", 2**63)
    # ctypes integer types wrap modulo 2**64 on every platform.
    assert ctypes.c_int64(2**63).value == INT64_MIN
    assert ctypes.c_uint8(-1).value == 255
