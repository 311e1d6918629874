#!/usr/bin/env python3
"""Regenerate the onnxruntime suite's models (models/*.onnx) and goldens (golden/).

Run on a native x86-64 host with the same onnx / onnxruntime / numpy as the
image (Debian trixie: python3-onnx 1.17, python3-onnxruntime 1.21,
python3-numpy 2.2): ``leapfrog golden onnxruntime`` runs it in
debian-trixie-amd64; by hand, with this folder as the cwd::

    PYTHONPATH=../../harness/probe python3 make_golden.py

Each model is built by onnxruntime_models.py with seeded weights, run once through
onnxruntime's CPU provider on a fixed seeded input, and the answer is checked
against onnx's pure-Python ReferenceEvaluator (the int8 model: against a numpy
transcription of the ONNX operator definitions) before it is written: a golden
that the reference disagrees with is never saved. Deterministic: the same
versions write the same models and the same arrays.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.reference  # before onnxruntime: on Debian both share libonnx (see conftest.py)
import onnxruntime as ort
import onnxruntime_models as bm
from leapfrog_checks import save_golden
from leapfrog_suite import generated_on, write_meta
from onnx import numpy_helper

HERE = Path(__file__).parent
MODELS = HERE / "models"
GOLDEN = HERE / "golden"
INPUT_SEED = 4242
BATCH = 4
# How far onnxruntime may sit from the reference evaluator before make_golden refuses
# to write: float32 kernels differ only in summation order and transcendental approximations.
CROSS_CHECK_RTOL, CROSS_CHECK_ATOL = 1e-4, 1e-5


# Why the int8 model may disagree with its reference on this host (see leapfrog_suite.int8_saturation_reason).
INT8_HINT = (
    " On an x86-64 host without VNNI (no avx512_vnni or avx_vnni in /proc/cpuinfo) onnxruntime's u8 x s8 "
    "kernels saturate: make the goldens on a host with VNNI."
)


def cross_check(name: str, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
    hint = INT8_HINT if name == "quant" else ""
    for key, value in outputs.items():
        ref = reference[key]
        if value.dtype.kind in "iu":
            if not np.array_equal(value, ref):
                sys.exit(f"{name}.{key}: onnxruntime and the reference evaluator disagree on integers.{hint}")
        elif not np.allclose(value, ref, rtol=CROSS_CHECK_RTOL, atol=CROSS_CHECK_ATOL):
            err = float(np.max(np.abs(value.astype(np.float64) - ref)))
            sys.exit(f"{name}.{key}: onnxruntime and the reference evaluator differ by {err:.3g}.{hint}")


def _requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: int) -> np.ndarray:
    """ONNX requantization: round half to even, add the zero point, saturate to uint8 (float32 as onnxruntime)."""
    scaled = np.rint(acc.astype(np.float32) * multiplier.astype(np.float32))
    return np.clip(scaled + zero_point, 0, 255).astype(np.uint8)


def quant_reference(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """The quant model written out in numpy, straight from the ONNX operator definitions.

    onnx 1.17's ReferenceEvaluator cannot run it (its QLinearConv does not
    broadcast a per-channel weight scale), so the golden is checked against this.
    """
    w = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    i32 = np.int32
    xq = np.clip(np.rint(x / w["x_scale"]) + int(w["x_zp"]), 0, 255).astype(np.uint8)
    n, _, hw, _ = x.shape
    # QLinearConv, pads 1: pad with the input zero point (= real 0), accumulate (xq - zp) * (w - w_zp) in int32
    padded = np.pad(xq.astype(i32) - int(w["x_zp"]), ((0, 0), (0, 0), (1, 1), (1, 1)))
    kernel = w["conv_w"].astype(i32) - w["conv_w_zp"].astype(i32)[:, None, None, None]
    acc = np.zeros((n, kernel.shape[0], hw, hw), dtype=i32)
    for dy in range(3):
        for dx in range(3):
            acc += np.einsum("nhw,c->nchw", padded[:, 0, dy : dy + hw, dx : dx + hw], kernel[:, 0, dy, dx])
    acc += w["conv_b"][None, :, None, None]
    conv_mult = (w["x_scale"] * w["conv_w_scale"] / w["conv_y_scale"])[None, :, None, None]
    conv_q = _requantize(acc, conv_mult, int(w["conv_y_zp"]))
    flat = conv_q.reshape(n, -1).astype(i32) - int(w["conv_y_zp"])
    fc_acc = flat @ (w["fc_w"].astype(i32) - int(w["fc_w_zp"]))
    fc_q = _requantize(fc_acc, w["conv_y_scale"] * w["fc_w_scale"] / w["fc_y_scale"], int(w["fc_y_zp"]))
    fc = (fc_q.astype(np.float32) - np.float32(w["fc_y_zp"])) * w["fc_y_scale"]
    # DynamicQuantizeLinear: the range always includes 0
    lo, hi = min(np.float32(0), fc.min()), max(np.float32(0), fc.max())
    h_scale = np.float32((hi - lo) / np.float32(255))
    h_zp = int(np.clip(np.rint(-lo / h_scale), 0, 255))
    h_q = np.clip(np.rint(fc / h_scale) + h_zp, 0, 255).astype(i32)
    out_acc = (h_q - h_zp) @ (w["out_w"].astype(i32) - int(w["out_w_zp"]))
    logits = out_acc.astype(np.float32) * (h_scale * w["out_w_scale"]) + w["out_b"]
    return {"logits": logits, "conv_q": conv_q, "fc_q": fc_q, "acc": out_acc}


def main() -> None:
    MODELS.mkdir(exist_ok=True)
    GOLDEN.mkdir(exist_ok=True)
    models = bm.build_all()
    files: dict[str, dict[str, object]] = {}
    for i, (name, model) in enumerate(models.items()):
        path = MODELS / f"{name}.onnx"
        onnx.save(model, path)
        x = bm.make_input(name, np.random.default_rng([INPUT_SEED, i]), BATCH)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(None, {"x": x}), strict=True))
        if name == "quant":
            reference = quant_reference(model, x)
        else:
            reference = dict(zip(names, onnx.reference.ReferenceEvaluator(model).run(None, {"x": x}), strict=True))
        cross_check(name, outputs, reference)
        save_golden(GOLDEN, name, {"in.x": x, **{f"out.{k}": v for k, v in outputs.items()}}, sort=False)
        files[name] = {"model_bytes": path.stat().st_size, "outputs": names}
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    meta = {
        "generated_on": generated_on(),
        "versions": {"onnx": onnx.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__},
        "opset": bm.OPSET,
        "ir_version": bm.IR_VERSION,
        "batch": BATCH,
        "input_seed": INPUT_SEED,
        "models": files,
    }
    write_meta(GOLDEN, meta)


if __name__ == "__main__":
    main()
