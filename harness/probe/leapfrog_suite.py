"""What every suite may use in the target, stdlib and pytest only (no numpy).

Copied into every target next to the probe (the probe folder is on
``PYTHONPATH`` there), so a suite's ``conftest.py`` or ``make_golden.py``
imports it as ``leapfrog_suite``; a suite without numpy (platform) can too.
The numpy comparisons are in ``leapfrog_checks``.

- the suite's ``[settings]``, the normalised machine name and the ``arch`` and
  ``bench_repeats`` fixtures;
- the x86-64 int8 host difference (VNNI) that some goldens depend on;
- ``timed``: median and p90 of a latency;
- a golden folder's ``meta.json``: :func:`golden_meta` reads it,
  :func:`write_meta` writes it (sorted keys, one trailing newline), and
  :func:`generated_on` is the machine and Python that wrote it.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Metrics = dict[str, Any]


def settings() -> dict[str, Any]:
    """The suite's ``[settings]`` table, as the harness passes it."""
    data: dict[str, Any] = json.loads(os.environ.get("LEAPFROG_SETTINGS", "{}") or "{}")
    return data


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


def golden_meta(folder: Path) -> dict[str, Any]:
    """``<folder>/meta.json``: the versions and host the goldens were made with."""
    meta: dict[str, Any] = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    return meta


def generated_on() -> dict[str, str]:
    """The machine and Python writing goldens now (``machine`` as ``platform.machine()`` says it)."""
    return {"machine": platform.machine(), "python": platform.python_version()}


def warn_unless_x86_64() -> None:
    """Goldens are meant to come from x86-64: say so on stderr when this host is not."""
    host = platform.machine()
    if host not in ("x86_64", "AMD64"):
        print(f"warning: goldens are meant to come from x86-64, this is {host}", file=sys.stderr)


def write_meta(folder: Path, meta: dict[str, Any], *, indent: int = 2) -> Path:
    """Write ``<folder>/meta.json``: sorted keys, ``indent`` spaces, one trailing newline (UTF-8)."""
    path = folder / "meta.json"
    path.write_text(json.dumps(meta, indent=indent, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


@pytest.fixture(scope="session")
def arch() -> str:
    """Normalised machine name of the target: x86_64, riscv64, aarch64, ..."""
    return machine()


@pytest.fixture(scope="session")
def bench_repeats() -> int:
    """Timed repetitions per latency case: the suite's ``bench_repeats`` setting (default 20)."""
    return int(settings().get("bench_repeats", 20))
