"""Golden-output helpers for suites, copied into every target next to the probe.

A suite's ``conftest.py`` imports these (``from leapfrog_checks import ...``):
the runner puts this file in the probe folder, which is on ``PYTHONPATH``
inside the target.  It needs numpy, so only suites that declare numpy import it.

``assert_close`` and ``assert_same`` record the error as metrics
(``<name>.max_abs_err``, ``<name>.max_rel_err``, ``<name>.mismatches``) and
fail with the numbers in the message.  ``assert_close`` compares values (any
dtypes, complex included; NaN must meet NaN, infinities must match);
``assert_same`` is bit-for-bit (dtype, shape and bytes, NaN payloads included).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

Metrics = dict[str, Any]


def settings() -> dict[str, Any]:
    """The suite's ``[settings]`` table, as the harness passes it."""
    data: dict[str, Any] = json.loads(os.environ.get("LEAPFROG_SETTINGS", "{}") or "{}")
    return data


def load_golden(folder: Path, name: str) -> dict[str, np.ndarray]:
    """All arrays of ``<folder>/<name>.npz`` (loaded eagerly; the files are small)."""
    with np.load(folder / f"{name}.npz", allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def golden_meta(folder: Path) -> dict[str, Any]:
    """``<folder>/meta.json``: the versions and host the goldens were made with."""
    meta: dict[str, Any] = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return meta


def machine() -> str:
    """Normalised machine name: x86_64, riscv64, aarch64, ..."""
    name = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)


#: Either gives int8 kernels an exact u8 x s8 dot product into int32 (vpdpbusd); as in facts.py.
X86_VNNI = ("avx512_vnni", "avx_vnni")


def cpuinfo_flags(text: str) -> set[str]:
    """The ``flags`` of /proc/cpuinfo text (x86; the first processor's), as a set."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return set(value.split())
    return set()


def host_cpu_flags() -> set[str]:
    """/proc/cpuinfo flags on x86-64; empty elsewhere (under qemu-user that file is the host's)."""
    if machine() != "x86_64":
        return set()
    try:
        return cpuinfo_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return set()


def int8_saturation_reason(arch: str, flags: set[str], *, saturates: bool | None, measured: str = "") -> str | None:
    """Why int8 answers on this host may differ from a golden made on a VNNI host, or None.

    Only x86-64 has the documented difference: without VNNI, u8 x s8 int8
    kernels (vpmaddubsw) sum each pair of products in int16 and saturate.
    ``saturates`` is what a tiny u8 x s8 product measured on this host (None:
    not measured): False means the kernels are exact here, whatever the flags
    say; True on a CPU whose /proc/cpuinfo lists VNNI means the process runs on
    another CPU than that file describes (qemu-user shows the host's).
    Elsewhere a saturating int8 kernel is a wrong answer, not a host difference.
    """
    if arch != "x86_64" or saturates is False:
        return None
    vnni = [f for f in X86_VNNI if f in flags]
    if vnni and not saturates:
        return None
    if not vnni:
        host = "x86-64 without VNNI (/proc/cpuinfo: avx2=%s, no avx512_vnni, no avx_vnni)" % (
            "yes" if "avx2" in flags else "no"
        )
    else:
        host = (
            "x86-64 whose /proc/cpuinfo lists %s, yet the CPU this process runs on has no VNNI "
            "(an emulated CPU: under qemu-user /proc/cpuinfo is the host's)" % ", ".join(vnni)
        )
    return (
        "host difference, not a port bug: %s. Here u8 x s8 int8 kernels sum each pair of products in int16 "
        "(vpmaddubsw) and saturate at 32767%s, while the golden was made on a VNNI host, whose vpdpbusd sums "
        "exactly in int32. onnxruntime documents this in its quantization guide; weights quantized to 7 bits "
        "(reduce_range=True) or u8 x u8 avoid it. Compare int8 answers with a golden from a VNNI host or from "
        "riscv64, not from this one." % (host, " (measured: %s)" % measured if measured else "")
    )


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

    The strict comparisons of the onnxruntime and torch suites use these (with a dtype check).
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


def assert_close(
    name: str,
    actual: Any,
    golden: Any,
    *,
    rtol: float,
    atol: float,
    metrics: Metrics,
) -> None:
    """Fail unless ``|actual - golden| <= atol + rtol * |golden|`` element-wise.

    NaN must sit where the golden has NaN and infinities must match exactly.
    Records ``<name>.max_abs_err`` and ``<name>.max_rel_err``.
    """
    a = np.asarray(actual)
    g = np.asarray(golden)
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


def assert_same(name: str, actual: Any, golden: Any, *, metrics: Metrics) -> None:
    """Bit-for-bit equality (same dtype, shape and bytes; NaN payloads included).

    Records ``<name>.mismatches``.
    """
    a = np.asarray(actual)
    g = np.asarray(golden)
    if a.dtype != g.dtype or a.shape != g.shape:
        pytest.fail(f"{name}: got {a.dtype}{a.shape}, golden is {g.dtype}{g.shape}")
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


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median and p90 wall time of ``fn()`` in milliseconds (after one warm-up call)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    samples.sort()
    p90 = samples[min(len(samples) - 1, round(0.9 * (len(samples) - 1)))]
    return statistics.median(samples), p90


@pytest.fixture(scope="session")
def arch() -> str:
    """Normalised machine name of the target: x86_64, riscv64, aarch64, ..."""
    return machine()


@pytest.fixture(scope="session")
def bench_repeats() -> int:
    """Timed repetitions per latency case: the suite's ``bench_repeats`` setting (default 20)."""
    return int(settings().get("bench_repeats", 20))
