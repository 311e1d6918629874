#!/usr/bin/env python3
"""Build the serving suite's two models and their golden outputs, deterministically.

Run on a native x86-64 host that has numpy, onnx, onnxruntime and torch:
``leapfrog golden serving`` runs it in debian-trixie-amd64; by hand, with this
folder as the cwd::

    PYTHONPATH=../../harness/probe python3 make_golden.py

Writes:

``models/mlp.onnx``      ONNX graph x[N,64] -> Gemm-Relu-Gemm-Tanh-Gemm -> logits[N,10]
``models/convnet.npz``   PyTorch Conv1d network weights (architecture in ``server.py``)
``golden/serving.npz``   ``inputs`` [32,64] and each model's outputs for them, computed
                         by the runtime the server uses (ONNX Runtime, PyTorch)
``golden/meta.json``     tolerance, shapes, seeds and the versions that wrote them

Weights and inputs come from fixed numpy seeds; both models are also run by an
independent float64 numpy implementation here, and the script refuses to write
goldens that disagree with it.  ``leapfrog_checks.save_golden`` gives zip members a
fixed timestamp, so the same library versions write byte-identical files (in
the plain zip layout these files were first written in: ``zip64=False``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import server
import torch
from leapfrog_checks import save_golden
from leapfrog_suite import generated_on, write_meta
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
GOLDEN = HERE / "golden"
WEIGHT_SEED = 20240601
INPUT_SEED = 20240602
SAMPLES = 32
HIDDEN = 64
#: Max absolute error allowed between a served output and its golden (logits are O(1);
#: float32 rounding differences between machines are ~1e-6).
ATOL = 1e-4
#: How close the runtimes must be to the float64 reference before goldens are written.
REFERENCE_ATOL = 1e-5
ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # readable by every ONNX Runtime since 1.10


def dense(rng: np.random.Generator, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    w = rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
    b = rng.standard_normal(fan_out) * 0.1
    return w.astype(np.float32), b.astype(np.float32)


# ----------------------------------------------------------------------------- mlp (ONNX)


def mlp_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    w1, b1 = dense(rng, server.INPUT_DIM, HIDDEN)
    w2, b2 = dense(rng, HIDDEN, HIDDEN)
    w3, b3 = dense(rng, HIDDEN, server.OUTPUT_DIM)
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3}


def mlp_onnx(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"]),
        helper.make_node("Tanh", ["h2"], ["a2"]),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "leapfrog_serving_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", server.INPUT_DIM])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", server.OUTPUT_DIM])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in sorted(w.items())],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="leapfrog make_golden.py"
    )
    model.ir_version = ONNX_IR_VERSION
    onnx.checker.check_model(model)
    return model


def mlp_reference(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    f = {k: v.astype(np.float64) for k, v in w.items()}
    a1 = np.maximum(x @ f["w1"] + f["b1"], 0.0)
    a2 = np.tanh(a1 @ f["w2"] + f["b2"])
    out: np.ndarray = a2 @ f["w3"] + f["b3"]
    return out


# ----------------------------------------------------------------------------- convnet (PyTorch)


def convnet_weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    c, k = server.CONV_CHANNELS, server.CONV_KERNEL
    flat = c * server.INPUT_DIM // server.CONV_POOL
    fc_w, fc_b = dense(rng, flat, server.OUTPUT_DIM)
    return {
        "conv1.weight": (rng.standard_normal((c, 1, k)) / np.sqrt(k)).astype(np.float32),
        "conv1.bias": (rng.standard_normal(c) * 0.1).astype(np.float32),
        "conv2.weight": (rng.standard_normal((c, c, k)) / np.sqrt(c * k)).astype(np.float32),
        "conv2.bias": (rng.standard_normal(c) * 0.1).astype(np.float32),
        "fc.weight": np.ascontiguousarray(fc_w.T),  # torch Linear keeps [out, in]
        "fc.bias": fc_b,
    }


def _conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross-correlation with 'same' zero padding: x [N, Cin, L], w [Cout, Cin, K]."""
    k = w.shape[2]
    pad = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    length = x.shape[2]
    windows = np.stack([xp[:, :, i : i + length] for i in range(k)], axis=-1)  # [N, Cin, L, K]
    out: np.ndarray = np.einsum("nclk,ock->nol", windows, w) + b[None, :, None]
    return out


def convnet_reference(w: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    f = {k: v.astype(np.float64) for k, v in w.items()}
    h = np.maximum(_conv1d(x[:, None, :], f["conv1.weight"], f["conv1.bias"]), 0.0)
    h = np.maximum(_conv1d(h, f["conv2.weight"], f["conv2.bias"]), 0.0)
    n, c, length = h.shape
    pooled = h.reshape(n, c, length // server.CONV_POOL, server.CONV_POOL).mean(axis=-1)
    out: np.ndarray = pooled.reshape(n, -1) @ f["fc.weight"].T + f["fc.bias"]
    return out


# ----------------------------------------------------------------------------- main


def contiguous(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every array in C order, as these files have always been written."""
    return {k: np.ascontiguousarray(v) for k, v in arrays.items()}


def check(name: str, got: np.ndarray, want: np.ndarray) -> None:
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    print(f"{name}: runtime vs float64 reference max abs error {err:.2e}")
    if not err <= REFERENCE_ATOL:
        raise SystemExit(f"{name}: the runtime disagrees with the float64 reference ({err:.2e} > {REFERENCE_ATOL})")


def main() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(WEIGHT_SEED)
    mlp_w = mlp_weights(rng)
    conv_w = convnet_weights(rng)
    inputs = np.random.default_rng(INPUT_SEED).standard_normal((SAMPLES, server.INPUT_DIM)).astype(np.float32)

    MODELS.mkdir(exist_ok=True)
    onnx_path = MODELS / "mlp.onnx"
    onnx_path.write_bytes(mlp_onnx(mlp_w).SerializeToString(deterministic=True))
    print(f"wrote {onnx_path.relative_to(HERE)} ({onnx_path.stat().st_size} bytes)")
    save_golden(MODELS, "convnet", contiguous(conv_w), zip64=False)

    # Goldens come from the very loaders the server uses, on this (x86-64) host.
    run_mlp, mlp_runtime = server.load_mlp(MODELS, threads=1)
    run_conv, conv_runtime = server.load_convnet(MODELS, threads=1)
    outputs = {"mlp": run_mlp(inputs), "convnet": run_conv(inputs)}
    x64 = inputs.astype(np.float64)
    check("mlp", outputs["mlp"], mlp_reference(mlp_w, x64))
    check("convnet", outputs["convnet"], convnet_reference(conv_w, x64))
    # One row at a time must give the batch's answer (the server sees both).
    for name, run in (("mlp", run_mlp), ("convnet", run_conv)):
        single = np.concatenate([run(inputs[i : i + 1]) for i in range(SAMPLES)])
        check(f"{name} (one row per call)", single, outputs[name].astype(np.float64))

    save_golden(GOLDEN, "serving", contiguous({"inputs": inputs, **outputs}), zip64=False)
    meta = {
        "generator": "make_golden.py",
        **generated_on(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "runtimes": {"mlp": mlp_runtime, "convnet": conv_runtime},
        "weight_seed": WEIGHT_SEED,
        "input_seed": INPUT_SEED,
        "samples": SAMPLES,
        "input_dim": server.INPUT_DIM,
        "output_dim": server.OUTPUT_DIM,
        "atol": ATOL,
        "atol_note": "max absolute error of any served logit against its golden value",
    }
    write_meta(GOLDEN, meta, indent=1)
    print(f"(onnxruntime {ort.__version__}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
