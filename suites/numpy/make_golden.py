#!/usr/bin/env python3
"""Regenerate every file under golden/ for the numpy suite.

Run on a native x86-64 host with the same numpy version as the image
(Debian trixie: python3-numpy 2.2.4): ``leapfrog golden numpy`` runs it in
debian-trixie-amd64; by hand, with this folder as the cwd::

    PYTHONPATH=../../harness/probe python3 make_golden.py

Deterministic: the same numpy build writes the same bytes (``leapfrog_checks.save_golden``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import numpy_recipes as r
from leapfrog_checks import save_golden
from leapfrog_suite import generated_on, warn_unless_x86_64, write_meta

OUT = Path(__file__).parent / "golden"


def linalg() -> None:
    inputs = r.linalg_inputs(np.random.default_rng(r.INPUT_SEED))
    out = {f"in.{k}": v for k, v in inputs.items()}
    for dtype in r.LINALG_DTYPES:
        x = r.linalg_cast(inputs, dtype)
        for op, fn in r.LINALG.items():
            for key, value in fn(x).items():
                out[f"{dtype}.{op}.{key}"] = value
    save_golden(OUT, "linalg", out)


def matmul() -> None:
    inputs = r.matmul_inputs(np.random.default_rng(r.INPUT_SEED + 1))
    out = {f"in.{k}": v for k, v in inputs.items()}
    for dtype in r.MATMUL_DTYPES:
        for key, value in r.matmul(inputs, dtype).items():
            out[f"{dtype}.{key}"] = value
    a, b = r.bench_operands("float64")
    out["bench"] = a @ b  # exact in float32 and float64 alike (see bench_operands)
    save_golden(OUT, "matmul", out)

    ein = r.einsum_inputs(np.random.default_rng(r.INPUT_SEED + 2))
    out = {f"in.{k}": v for k, v in ein.items()}
    for expr in r.EINSUM_EXPRS:
        for dtype in r.EINSUM_DTYPES:
            out[f"{expr}.{dtype}"] = r.einsum(ein, expr, dtype, optimize=False)
    save_golden(OUT, "einsum", out)


def fft() -> None:
    inputs = r.fft_inputs(np.random.default_rng(r.INPUT_SEED + 3))
    out = {f"in.{k}": v for k, v in inputs.items()}
    for dtype in r.FFT_DTYPES:
        for op, fn in r.FFT.items():
            for key, value in fn(inputs, dtype).items():
                out[f"{dtype}.{op}.{key}"] = value
    save_golden(OUT, "fft", out)


def reductions() -> None:
    inputs = r.reduction_inputs(np.random.default_rng(r.INPUT_SEED + 4))
    out = {f"in.{k}": v for k, v in inputs.items()}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices warn; the NaN result is what we keep
        for dtype in r.REDUCTION_DTYPES:
            for op, fn in r.REDUCTIONS.items():
                for key, value in fn(inputs, dtype).items():
                    out[f"{dtype}.{op}.{key}"] = value
    save_golden(OUT, "reductions", out)


def cast_one(value: np.ndarray, target: str) -> tuple[np.ndarray, bool]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = value.astype(target)
    return result, any(issubclass(w.category, RuntimeWarning) for w in caught)


def casting() -> None:
    out: dict[str, np.ndarray] = {"in.values": r.CAST_VALUES}
    for src in r.CAST_SOURCES:
        values = r.CAST_VALUES.astype(src)
        for tgt in r.CAST_TARGETS:
            singles = [cast_one(values[i : i + 1], tgt) for i in range(values.size)]
            out[f"{src}.{tgt}.single"] = np.concatenate([s[0] for s in singles])
            out[f"{src}.{tgt}.warned"] = np.array([s[1] for s in singles])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[f"{src}.{tgt}.bulk"] = values.astype(tgt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow to inf in the narrowing casts is intended
        for key, value in r.defined_casts().items():
            out[f"defined.{key}"] = value
    save_golden(OUT, "casting", out)


def random() -> None:
    out: dict[str, np.ndarray] = {}
    for name in r.RAW_BIT_GENERATORS:
        out[f"raw.{name}"] = r.raw_stream(name)
    for name, fn in r.RANDOM.items():
        out[f"gen.{name}"] = np.asarray(fn(np.random.default_rng(r.SEED)))
    for key, value in r.legacy_streams().items():
        out[f"legacy.{key}"] = value
    save_golden(OUT, "random", out)


def meta() -> None:
    config = np.show_config(mode="dicts")
    info = {
        "generator": "make_golden.py",
        **generated_on(),
        "numpy": np.__version__,
        "blas": config["Build Dependencies"]["blas"].get("name", "?"),
        "lapack": config["Build Dependencies"]["lapack"].get("name", "?"),
    }
    warn_unless_x86_64()
    write_meta(OUT, info)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    linalg()
    matmul()
    fft()
    reductions()
    casting()
    random()
    meta()


if __name__ == "__main__":
    main()
