#!/usr/bin/env python3
"""Regenerate every file under golden/ for the numpy suite.

Run on a native x86-64 host with the same numpy version as the image
(Debian trixie: python3-numpy 2.2.4), with this folder as the cwd::

    python3 make_golden.py

Deterministic: the same numpy build writes the same arrays (only the zip\ntimestamps inside the .npz files change).
"""

from __future__ import annotations

import json
import platform
import sys
import warnings
from pathlib import Path

import np_recipes as r
import numpy as np

OUT = Path(__file__).parent / "golden"


def save(name: str, arrays: dict[str, np.ndarray]) -> None:
    path = OUT / f"{name}.npz"
    np.savez_compressed(path, **{k: np.asarray(v) for k, v in sorted(arrays.items())})
    print(f"wrote {path} ({path.stat().st_size} bytes, {len(arrays)} arrays)")


def linalg() -> None:
    inputs = r.linalg_inputs(np.random.default_rng(r.INPUT_SEED))
    out = {f"in.{k}": v for k, v in inputs.items()}
    for dtype in r.LINALG_DTYPES:
        x = r.linalg_cast(inputs, dtype)
        for op, fn in r.LINALG.items():
            for key, value in fn(x).items():
                out[f"{dtype}.{op}.{key}"] = value
    save("linalg", out)


def matmul() -> None:
    inputs = r.matmul_inputs(np.random.default_rng(r.INPUT_SEED + 1))
    out = {f"in.{k}": v for k, v in inputs.items()}
    for dtype in r.MATMUL_DTYPES:
        for key, value in r.matmul(inputs, dtype).items():
            out[f"{dtype}.{key}"] = value
    a, b = r.bench_operands("float64")
    out["bench"] = a @ b  # exact in float32 and float64 alike (see bench_operands)
    save("matmul", out)

    ein = r.einsum_inputs(np.random.default_rng(r.INPUT_SEED + 2))
    out = {f"in.{k}": v for k, v in ein.items()}
    for expr in r.EINSUM_EXPRS:
        for dtype in r.EINSUM_DTYPES:
            out[f"{expr}.{dtype}"] = r.einsum(ein, expr, dtype, optimize=False)
    save("einsum", out)


def fft() -> None:
    inputs = r.fft_inputs(np.random.default_rng(r.INPUT_SEED + 3))
    out = {f"in.{k}": v for k, v in inputs.items()}
    for dtype in r.FFT_DTYPES:
        for op, fn in r.FFT.items():
            for key, value in fn(inputs, dtype).items():
                out[f"{dtype}.{op}.{key}"] = value
    save("fft", out)


def reductions() -> None:
    inputs = r.reduction_inputs(np.random.default_rng(r.INPUT_SEED + 4))
    out = {f"in.{k}": v for k, v in inputs.items()}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices warn; the NaN result is what we keep
        for dtype in r.REDUCTION_DTYPES:
            for op, fn in r.REDUCTIONS.items():
                for key, value in fn(inputs, dtype).items():
                    out[f"{dtype}.{op}.{key}"] = value
    save("reductions", out)


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
    save("casting", out)


def random() -> None:
    out: dict[str, np.ndarray] = {}
    for name in r.RAW_BIT_GENERATORS:
        out[f"raw.{name}"] = r.raw_stream(name)
    for name, fn in r.RANDOM.items():
        out[f"gen.{name}"] = np.asarray(fn(np.random.default_rng(r.SEED)))
    for key, value in r.legacy_streams().items():
        out[f"legacy.{key}"] = value
    save("random", out)


def meta() -> None:
    config = np.show_config(mode="dicts")
    info = {
        "generator": "make_golden.py",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": config["Build Dependencies"]["blas"].get("name", "?"),
        "lapack": config["Build Dependencies"]["lapack"].get("name", "?"),
    }
    if info["machine"] not in ("x86_64", "AMD64"):
        print(f"warning: goldens are meant to come from x86-64, this is {info['machine']}", file=sys.stderr)
    (OUT / "meta.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT / 'meta.json'}: {info}")


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
