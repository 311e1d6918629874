"""IEEE 754 double semantics, libm results, FMA, rounding modes and NaN bit patterns."""

from __future__ import annotations

import ctypes
import math
import struct
import sys
from typing import Any

import pytest

INF = float("inf")
SIGN_BIT = 1 << 63


def bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def from_bits(b: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def ulps_apart(a: float, b: float) -> int:
    if a == b:
        return 0
    assert math.copysign(1.0, a) == math.copysign(1.0, b)
    return abs(bits(a) - bits(b))


def test_float_info(metrics: dict[str, Any]) -> None:
    info = sys.float_info
    metrics["float_repr_style"] = sys.float_repr_style
    metrics["float_mant_dig"] = info.mant_dig
    assert info.mant_dig == 53
    assert info.dig == 15
    assert info.max_exp == 1024
    assert info.min_exp == -1021
    assert info.max == float.fromhex("0x1.fffffffffffffp+1023")
    assert info.epsilon == 2.0**-52
    assert info.radix == 2
    assert info.rounds == 1
    assert sys.float_repr_style == "short"


def test_infinities() -> None:
    big = sys.float_info.max
    assert big * 2.0 == INF
    assert -big * 2.0 == -INF
    assert INF + 1e308 == INF
    assert INF - 1e308 == INF
    assert 1.0 / INF == 0.0
    assert math.isnan(INF - INF)
    assert math.isnan(INF * 0.0)
    assert math.isinf(float("-inf"))
    assert float("-inf") < -big
    assert math.atan(INF) == math.pi / 2
    assert math.exp(-INF) == 0.0
    with pytest.raises(OverflowError):
        math.exp(1000.0)


def test_nan_comparisons() -> None:
    nan = float("nan")
    same = nan
    assert same != nan
    assert not same == nan  # noqa: SIM201
    assert not nan < 1.0
    assert not nan > 1.0
    assert math.isnan(nan + 1.0)
    assert math.isnan(nan * 0.0)
    with pytest.raises(ValueError):
        math.fmod(INF, 1.0)
    assert math.isnan(math.copysign(nan, -1.0))
    assert math.copysign(1.0, math.copysign(nan, -1.0)) == -1.0
    assert math.hypot(INF, nan) == INF  # IEEE: hypot(inf, nan) is inf
    assert sorted([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]


def test_signed_zero() -> None:
    neg = -0.0
    assert neg == 0.0
    assert bits(neg) == SIGN_BIT
    assert bits(0.0) == 0
    assert math.copysign(1.0, neg) == -1.0
    assert math.atan2(0.0, neg) == math.pi
    assert math.atan2(neg, neg) == -math.pi
    assert math.copysign(1.0, 1.0 / -INF) == -1.0
    assert math.copysign(1.0, math.sqrt(neg)) == -1.0  # IEEE: sqrt(-0) = -0
    assert math.copysign(1.0, neg * 5.0) == -1.0
    assert math.copysign(1.0, neg + 0.0) == 1.0  # round-to-nearest: -0 + +0 = +0
    assert repr(neg) == "-0.0"
    assert float("-0.0") == 0.0


def test_subnormals(metrics: dict[str, Any]) -> None:
    tiny = math.ulp(0.0)
    assert tiny == 5e-324 == float.fromhex("0x0.0000000000001p-1022")
    assert tiny == math.nextafter(0.0, 1.0)
    assert sys.float_info.min / 2**52 == tiny  # no flush-to-zero
    assert sys.float_info.min * 0.5 > 0.0
    half = tiny / 2.0
    assert half == 0.0  # ties-to-even rounds 2**-1075 down to 0
    assert tiny * 1.5 == 2 * tiny  # 1.5 ulp rounds to even (2 ulp)
    assert (sys.float_info.min - tiny) < sys.float_info.min  # gradual underflow
    # float32 subnormals through struct (a real C double->float conversion)
    f32_tiny = struct.unpack("<f", struct.pack("<f", 1.4e-45))[0]
    assert f32_tiny == 2.0**-149
    metrics["subnormal_min"] = tiny
    metrics["float32_subnormal_min"] = f32_tiny


def test_rounding_to_nearest_even() -> None:
    assert [round(x) for x in (0.5, 1.5, 2.5, -0.5, -2.5)] == [0, 2, 2, 0, -2]
    assert round(2.675, 2) == 2.67  # 2.675 is really 2.67499999...
    assert 0.1 + 0.2 == float.fromhex("0x1.3333333333334p-2") != 0.3
    naive = 0.0
    for _ in range(10):
        naive += 0.1
    assert naive == 0.9999999999999999  # sum() itself is compensated since 3.12
    assert math.fsum([0.1] * 10) == 1.0
    assert float(2**53 + 1) == 2.0**53  # tie to even
    assert float(2**53 + 3) == 2.0**53 + 4
    assert int(-2.5) == -2
    assert math.floor(-2.5) == -3
    assert math.ceil(-2.5) == -2
    assert repr(1 / 3) == "0.3333333333333333"
    assert float("1.7976931348623157e308") == sys.float_info.max
    assert float("2.4703282292062328e-324") == 5e-324  # just above half the tiniest


def _fma_checks(fma: Any) -> None:
    x = 1.0 + 2.0**-30
    # x*x = 1 + 2**-29 + 2**-60; the product rounds away 2**-60, fma keeps it.
    assert x * x - (1.0 + 2.0**-29) == 0.0
    assert fma(x, x, -(1.0 + 2.0**-29)) == 2.0**-60
    assert fma(0.1, 10.0, -1.0) == 5.551115123125783e-17
    assert fma(2.0, 3.0, 4.0) == 10.0
    assert math.copysign(1.0, fma(-0.0, 1.0, -0.0)) == -1.0


def test_fma_math_module() -> None:
    if not hasattr(math, "fma"):
        pytest.skip(f"math.fma needs Python 3.13; this is {sys.version.split()[0]}")
    _fma_checks(math.fma)
    with pytest.raises(ValueError):
        math.fma(INF, 0.0, 1.0)  # invalid operation


def test_fma_libm(libm: ctypes.CDLL, cfunc: Any) -> None:
    fma = cfunc(libm, "fma", ctypes.c_double, ctypes.c_double, ctypes.c_double, ctypes.c_double)
    _fma_checks(fma)
    assert math.isnan(fma(INF, 0.0, 1.0))


# Correctly rounded reference values (mpmath at 300 bits, rounded to double).
LIBM_REFERENCE = {
    "exp_1": (lambda: math.exp(1.0), 2.718281828459045),
    "log_10": (lambda: math.log(10.0), 2.302585092994046),
    "sin_1e22": (lambda: math.sin(1e22), -0.8522008497671888),
    "cos_1e22": (lambda: math.cos(1e22), 0.523214785395139),
    "tan_1_5": (lambda: math.tan(1.5), 14.101419947171719),
    "pow_2_half": (lambda: math.pow(2.0, 0.5), 1.4142135623730951),
    "atan_1_x4": (lambda: math.atan(1.0) * 4.0, math.pi),
    "cbrt_27_5": (lambda: math.cbrt(27.5), 3.018405368398843),
    "erf_0_5": (lambda: math.erf(0.5), 0.5204998778130465),
    "lgamma_10_5": (lambda: math.lgamma(10.5), 13.940625219403763),
    "expm1_1em10": (lambda: math.expm1(1e-10), 1.00000000005e-10),
    "log1p_1em10": (lambda: math.log1p(1e-10), 9.999999999500001e-11),
}


def test_libm_accuracy(metrics: dict[str, Any]) -> None:
    worst = 0
    for name, (compute, reference) in LIBM_REFERENCE.items():
        value = compute()
        metrics[f"libm_{name}"] = value.hex()
        err = ulps_apart(value, reference)
        worst = max(worst, err)
        assert err <= 2, f"{name} = {value!r}, reference {reference!r} ({err} ulp)"
    metrics["libm_worst_ulp"] = worst
    # IEEE 754 requires sqrt and basic arithmetic to be correctly rounded.
    assert math.sqrt(2.0) == 1.4142135623730951
    assert math.sqrt(1e-320) == 9.99994433575849e-161
    assert float.fromhex("0x1.5555555555555p-2") == 1.0 / 3.0


FE_MODES = {  # glibc <fenv.h> values: (nearest, upward, downward, toward zero)
    "x86_64": (0x000, 0x800, 0x400, 0xC00),
    "riscv64": (0, 3, 2, 1),
    "aarch64": (0, 0x400000, 0x800000, 0xC00000),
}


def test_rounding_modes(arch: str, libm: ctypes.CDLL, cfunc: Any, metrics: dict[str, Any]) -> None:
    if arch not in FE_MODES:
        pytest.skip(f"no <fenv.h> rounding-mode constants recorded for {arch}")
    nearest, upward, downward, towardzero = FE_MODES[arch]
    fesetround = cfunc(libm, "fesetround", ctypes.c_int, ctypes.c_int)
    fegetround = cfunc(libm, "fegetround", ctypes.c_int)
    lrint = cfunc(libm, "lrint", ctypes.c_long, ctypes.c_double)
    original = fegetround()
    assert original == nearest
    one, three = 1.0, 3.0
    results: dict[str, tuple[int, int, float]] = {}
    try:
        for name, mode in (("up", upward), ("down", downward), ("zero", towardzero), ("near", nearest)):
            assert fesetround(mode) == 0
            assert fegetround() == mode
            results[name] = (lrint(2.5), lrint(-2.5), one / three)
    finally:
        fesetround(original)
    assert fegetround() == original
    assert results["near"][:2] == (2, -2)
    assert results["up"][:2] == (3, -2)
    assert results["down"][:2] == (2, -3)
    assert results["zero"][:2] == (2, -2)
    # The hardware (or emulated) FPU must honour the dynamic mode for division.
    assert results["down"][2] < results["up"][2]
    assert results["zero"][2] == results["down"][2]
    assert results["near"][2] == float.fromhex("0x1.5555555555555p-2")
    metrics["fe_upward_value"] = upward


# Documented NaN behaviour: x86 SSE returns the "default NaN" with the sign bit set
# and propagates input payloads; RISC-V always returns the canonical NaN
# 0x7ff8000000000000 (F/D spec "NaN generation and propagation"); AArch64 with
# FPCR.DN=0 returns the positive default NaN and propagates payloads.
NAN_BEHAVIOUR = {
    "x86_64": {"default": 0xFFF8000000000000, "propagated": 0x7FF8000020000123},
    "riscv64": {"default": 0x7FF8000000000000, "propagated": 0x7FF8000000000000},
    "aarch64": {"default": 0x7FF8000000000000, "propagated": 0x7FF8000020000123},
}


def test_nan_bit_patterns(arch: str, metrics: dict[str, Any]) -> None:
    inf = INF
    default_nan = bits(inf - inf)
    payload_nan = from_bits(0x7FF8000020000123)
    propagated = bits(payload_nan + 1.0)
    negated = bits(-payload_nan)  # sign injection never canonicalises
    f32 = struct.unpack("<I", struct.pack("<f", payload_nan))[0]  # C (float)double
    metrics["nan_default_bits"] = f"{default_nan:#018x}"
    metrics["nan_propagated_bits"] = f"{propagated:#018x}"
    metrics["nan_to_float32_bits"] = f"{f32:#010x}"
    assert negated == 0x7FF8000020000123 | SIGN_BIT
    assert math.isnan(from_bits(default_nan))
    assert math.isnan(from_bits(propagated))
    assert f32 & 0x7FC00000 == 0x7FC00000  # a quiet float32 NaN
    table = NAN_BEHAVIOUR.get(arch)
    if table is not None:
        assert default_nan == table["default"]
        assert propagated == table["propagated"]
        if arch == "x86_64":
            assert f32 == 0x7FC00001  # cvtsd2ss keeps the top payload bits
    else:
        assert default_nan in {t["default"] for t in NAN_BEHAVIOUR.values()}
