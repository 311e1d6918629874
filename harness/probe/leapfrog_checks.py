"""Golden-output helpers that need numpy, copied into every target next to the probe.

A suite's ``conftest.py`` or ``make_golden.py`` imports these (``from
leapfrog_checks import ...``): the runner puts this file in the probe folder,
which is on ``PYTHONPATH`` inside the target.  It needs numpy, so only suites
that declare numpy import it; what needs only the stdlib is in
``leapfrog_suite``.

Comparing: ``assert_close`` and ``assert_same`` record the error as metrics
(``<name>.max_abs_err``, ``<name>.max_rel_err``, ``<name>.mismatches``) and fail
with the numbers in the message.  By default ``assert_close`` compares values
of any dtypes (complex included; NaN must meet NaN, infinities must match) and
``assert_same`` is bit for bit (dtype, shape and bytes, NaN payloads
included).  Their options are the stricter or looser rules some suites keep:

- ``assert_close(..., strict_dtype=True)``: the dtype must be the golden's, and
  errors are :func:`value_errors` (real values; an infinity is never close);
- ``assert_same(..., bits=False)``: equal values, not bytes (NaN meets NaN
  whatever its payload, -0.0 equals 0.0); ``max_abs_err`` is always recorded.

Both take numpy arrays, anything ``np.asarray`` takes, and torch tensors.

Writing: :func:`save_golden` writes ``<folder>/<name>.npz`` byte for byte
reproducibly (see :func:`write_npz`); ``leapfrog_suite.write_meta`` writes
``meta.json``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from leapfrog_suite import Metrics

#: The time stamp of every member of a golden .npz: a fixed one, so the same arrays give the same bytes.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def load_golden(folder: Path, name: str) -> dict[str, np.ndarray]:
    """All arrays of ``<folder>/<name>.npz`` (loaded eagerly; the files are small)."""
    with np.load(folder / f"{name}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def write_npz(path: Path, arrays: Mapping[str, Any], *, zip64: bool = True) -> Path:
    """``np.savez_compressed`` with a fixed member time stamp: the same arrays write the same bytes.

    Members are written in the order of ``arrays``.  ``zip64=True`` is numpy's
    own layout (each member forced to zip64); ``False`` is the plain zip layout
    the serving suite's files were written in.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=zip64) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return path


def save_golden(folder: Path, name: str, arrays: Mapping[str, Any], *, sort: bool = True, zip64: bool = True) -> Path:
    """Write ``<folder>/<name>.npz`` (:func:`write_npz`; keys sorted unless ``sort=False``) and say so."""
    items = sorted(arrays.items()) if sort else list(arrays.items())
    path = write_npz(folder / f"{name}.npz", {k: np.asarray(v) for k, v in items}, zip64=zip64)
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(items)} arrays)")
    return path


def as_array(value: Any) -> np.ndarray:
    """A numpy array of ``value``: a torch tensor is detached and brought to the CPU first."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _errors(actual: np.ndarray, golden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wide = np.complex128 if np.iscomplexobj(actual) or np.iscomplexobj(golden) else np.float64
    a = actual.astype(wide)
    g = golden.astype(wide)
    both_nan = np.isnan(a) & np.isnan(g)
    same_inf = np.isinf(a) & (a == g)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(both_nan | same_inf, 0.0, np.abs(a - g))
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN where the golden has a number (or the reverse)
    scale = np.abs(g)
    # Relative error over the entries whose golden value is non-zero (a zero golden is judged by atol alone).
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where((diff == 0) | (scale == 0), 0.0, diff / np.where(scale > 0, scale, 1.0))
    return diff, rel


def value_errors(actual: np.ndarray, golden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute and relative errors of real values: NaN meets NaN at no cost, NaN on one
    side is an infinite error, and any error against a zero golden is infinitely relative.

    The strict comparisons (``strict_dtype=True``, ``bits=False``) use these.
    """
    a = actual.astype(np.float64)
    g = golden.astype(np.float64)
    diff = np.where(np.isnan(a) & np.isnan(g), 0.0, np.abs(a - g))
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only
    scale = np.abs(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.where(scale > 0, scale, np.inf))
    rel = np.where((diff > 0) & (scale == 0), np.inf, rel)
    return diff, rel


def _same_dtype_and_shape(name: str, a: np.ndarray, g: np.ndarray, golden_is: str) -> None:
    if a.shape != g.shape or a.dtype != g.dtype:
        prefix = f"{name}: " if name else ""
        pytest.fail(f"{prefix}got {a.dtype}{a.shape}, {golden_is} {g.dtype}{g.shape}")


def assert_close(
    name: str,
    actual: Any,
    golden: Any,
    *,
    rtol: float,
    atol: float,
    metrics: Metrics,
    strict_dtype: bool = False,
) -> None:
    """Fail unless ``|actual - golden| <= atol + rtol * |golden|`` element-wise.

    NaN must sit where the golden has NaN.  By default any dtypes compare
    (complex included) and matching infinities are equal; with
    ``strict_dtype=True`` the dtype must be the golden's and the errors are
    :func:`value_errors`.  Records ``<name>.max_abs_err`` and ``<name>.max_rel_err``.
    """
    a = as_array(actual)
    g = as_array(golden)
    if strict_dtype:
        _same_dtype_and_shape(name, a, g, "the golden is")
        diff, rel = value_errors(a, g)
    else:
        if a.shape != g.shape:
            pytest.fail(f"{name}: shape {a.shape} differs from the golden shape {g.shape}")
        if a.size == 0:
            metrics[f"{name}.max_abs_err"] = 0.0
            metrics[f"{name}.max_rel_err"] = 0.0
            return
        diff, rel = _errors(a, g)
    judge(name, a, g, diff, rel, rtol=rtol, atol=atol, metrics=metrics)


def judge(
    name: str,
    a: np.ndarray,
    g: np.ndarray,
    diff: np.ndarray,
    rel: np.ndarray,
    *,
    rtol: float,
    atol: float,
    metrics: Metrics,
) -> None:
    """Record the largest errors; fail naming the worst value outside ``atol + rtol * |golden|``.

    ``diff`` and ``rel`` are the absolute and relative errors of ``a`` against
    ``g``, element-wise, however the caller defines them.
    """
    max_abs = float(diff.max(initial=0.0))
    max_rel = float(rel.max(initial=0.0))
    metrics[f"{name}.max_abs_err"] = max_abs
    metrics[f"{name}.max_rel_err"] = max_rel
    bad = diff > atol + rtol * np.abs(g.astype(np.complex128 if np.iscomplexobj(g) else np.float64))
    if bad.any():
        where = np.unravel_index(int(np.argmax(np.where(bad, diff, -1.0))), a.shape)
        pytest.fail(
            f"{name}: {int(bad.sum())} of {a.size} values outside tolerance (rtol={rtol:g}, atol={atol:g}): "
            f"max_abs_err={max_abs:.3g} max_rel_err={max_rel:.3g}; worst at index {tuple(map(int, where))}: "
            f"got {a[where]!r}, golden {g[where]!r}"
        )


def _value_differ(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Where the values differ: NaN meets NaN (floats), -0.0 equals 0.0."""
    differ: np.ndarray = (a != g) & ~(np.isnan(a) & np.isnan(g)) if a.dtype.kind == "f" else a != g
    return differ


def count_mismatches(actual: Any, golden: Any) -> tuple[int, float]:
    """How many values differ (as ``assert_same(..., bits=False)`` judges), and the largest absolute difference.

    The dtype and shape must be the golden's.
    """
    a = as_array(actual)
    g = as_array(golden)
    _same_dtype_and_shape("", a, g, "the golden is")
    diff, _ = value_errors(a, g)
    return int(np.count_nonzero(_value_differ(a, g))), float(diff.max(initial=0.0))


def assert_same(name: str, actual: Any, golden: Any, *, metrics: Metrics, bits: bool = True) -> None:
    """Exact equality of dtype, shape and every value.  Records ``<name>.mismatches``.

    ``bits=True`` (default): bit for bit, NaN payloads and the sign of zero
    included; on a mismatch also ``max_abs_err`` and ``max_rel_err``.
    ``bits=False``: equal values (NaN meets NaN, -0.0 equals 0.0); always
    records ``max_abs_err``.
    """
    a = as_array(actual)
    g = as_array(golden)
    if not bits:
        _same_dtype_and_shape(name, a, g, "the golden is")
        differ = _value_differ(a, g)
        count = int(np.count_nonzero(differ))
        diff, _ = value_errors(a, g)
        metrics[f"{name}.mismatches"] = count
        metrics[f"{name}.max_abs_err"] = float(diff.max(initial=0.0))
        if count:
            first = tuple(int(i) for i in np.argwhere(differ)[0])
            pytest.fail(
                f"{name}: {count} of {a.size} values differ from the golden (max_abs_err={float(diff.max()):.3g}); "
                f"first at index {first}: got {a[first]!r}, golden {g[first]!r}"
            )
        return
    _same_dtype_and_shape(name, a, g, "golden is")
    if a.dtype.kind in "fc":
        view = np.dtype(f"u{a.dtype.itemsize // (2 if a.dtype.kind == 'c' else 1)}")
        differ = a.view(view) != g.view(view)
        if a.dtype.kind == "c":
            differ = differ.reshape(*a.shape, 2).any(axis=-1)
    else:
        differ = a != g
    count = int(np.count_nonzero(differ))
    metrics[f"{name}.mismatches"] = count
    if count:
        first = tuple(int(i) for i in np.argwhere(differ)[0])
        diff, rel = _errors(a, g) if a.dtype.kind in "fciu" else (np.zeros(1), np.zeros(1))
        metrics[f"{name}.max_abs_err"] = float(diff.max())
        metrics[f"{name}.max_rel_err"] = float(rel.max())
        pytest.fail(
            f"{name}: {count} of {a.size} values are not bit-identical to the golden "
            f"(max_abs_err={float(diff.max()):.3g} max_rel_err={float(rel.max()):.3g}); "
            f"first at index {first}: got {a[first]!r}, golden {g[first]!r}"
        )
