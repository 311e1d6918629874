"""Casting edge cases.

Float -> integer casts of NaN, infinities and out-of-range values are undefined
behaviour in C, and x86-64 (cvttsd2si: the "integer indefinite" 0x80...0) and
RISC-V (fcvt: saturate, NaN -> maximum) answer differently. Those results are
recorded as metrics next to what x86-64 answered, not asserted; the in-range
values and the IEEE-defined casts must match the golden exactly.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy_recipes as r
import pytest
from conftest import Metrics, assert_same, golden_meta, load_golden

GOLDEN = load_golden("casting")
#: Inputs whose outcome is shown as its own metric (the rest are summarised in "differences").
HEADLINE = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "1e20": 1e20, "-1e20": -1e20, "-1": -1.0, "300.5": 300.5}


def cast_one(value: np.ndarray, target: str) -> tuple[np.ndarray, bool]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = value.astype(target)
    return result, any(issubclass(w.category, RuntimeWarning) for w in caught)


def _summary(items: list[str], limit: int = 1200) -> str:
    text = "; ".join(items) or "none"
    return text if len(text) <= limit else text[:limit] + f" ... ({len(items)} in all)"


@pytest.mark.parametrize("target", r.CAST_TARGETS)
def test_float_to_int(target: str, metrics: Metrics) -> None:
    differences: list[str] = []
    warning_differences: list[str] = []
    for src in r.CAST_SOURCES:
        values = r.CAST_VALUES.astype(src)
        defined = r.cast_defined(values, target)
        singles = [cast_one(values[i : i + 1], target) for i in range(values.size)]
        single = np.concatenate([s[0] for s in singles])
        warned = np.array([s[1] for s in singles])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            bulk = values.astype(target)

        # Defined by C and numpy: truncation toward zero of an in-range value, exact everywhere.
        assert_same(
            f"{src}.defined_single", single[defined], GOLDEN[f"{src}.{target}.single"][defined], metrics=metrics
        )
        assert_same(f"{src}.defined_bulk", bulk[defined], GOLDEN[f"{src}.{target}.bulk"][defined], metrics=metrics)

        # Undefined: record what this target does beside what x86-64 did.
        x86_single = GOLDEN[f"{src}.{target}.single"]
        x86_warned = GOLDEN[f"{src}.{target}.warned"]
        for i in np.flatnonzero(~defined):
            label = f"{src}({float(values[i])!r})"
            if single[i] != x86_single[i]:
                differences.append(f"{label}={single[i]} (x86-64 {x86_single[i]})")
            if bulk[i] != single[i]:  # numpy's contiguous (possibly SIMD) loop disagrees with its scalar loop
                differences.append(f"{label} array loop={bulk[i]}")
            if warned[i] != x86_warned[i]:
                warning_differences.append(f"{label} warns={bool(warned[i])}")
        for label, value in HEADLINE.items():
            idx = int(np.flatnonzero(np.isnan(r.CAST_VALUES) if label == "nan" else value == r.CAST_VALUES)[0])
            if not defined[idx]:
                metrics[f"{src}({label})"] = int(single[idx])
        metrics[f"{src}.undefined_inputs"] = int((~defined).sum())
        metrics[f"{src}.warned"] = int(warned.sum())
    metrics["differs_from_x86_64"] = len(differences)
    metrics["differences"] = _summary(differences)
    metrics["warning_differs_from_x86_64"] = len(warning_differences)
    metrics["warning_differences"] = _summary(warning_differences)
    metrics["golden_machine"] = golden_meta()["machine"]


def test_defined_casts(metrics: Metrics) -> None:
    """IEEE 754 round-to-nearest-even narrowing, overflow to inf, subnormals, int<->float: bit-identical."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow to inf in the narrowing casts is intended
        result = r.defined_casts()
    for key, value in result.items():
        assert_same(key, value, GOLDEN[f"defined.{key}"], metrics=metrics)
