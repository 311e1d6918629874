"""The suite's ONNX models, built node by node with ``onnx.helper``.

Four small models with deterministic weights (``numpy.random.default_rng``):

``mlp``          Gemm / Relu / Tanh / Softmax
``cnn``          Conv / BatchNormalization / Relu / MaxPool / AveragePool /
                 GlobalAveragePool / Flatten / Gemm
``transformer``  one pre-norm encoder block: LayerNormalization, multi-head
                 self-attention (MatMul, Reshape, Transpose, Softmax), Gelu,
                 residual Adds
``quant``        int8: QuantizeLinear, QLinearConv, QLinearMatMul,
                 DynamicQuantizeLinear, MatMulInteger, DequantizeLinear

Opset and IR version are pinned so that both Debian trixie's onnx 1.17 /
onnxruntime 1.21 and current PyPI releases load the files: opset 20 is the
first with ``Gelu`` (LayerNormalization needs 17), IR 10 is the newest that
onnx 1.17 writes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 20
IR_VERSION = 10
WEIGHT_SEED = 20240601
BATCH = "N"  # the symbolic batch dimension of every input and output

# Shapes, shared with make_golden.py (inputs) and the tests.
MLP_IN, MLP_HIDDEN, MLP_OUT = 32, 64, 10
CNN_CH, CNN_HW, CNN_OUT = 3, 16, 10
SEQ, D_MODEL, HEADS, D_FF = 8, 32, 4, 64
Q_HW, Q_CH, Q_HIDDEN, Q_OUT = 8, 4, 16, 10


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _f32(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _model(graph: onnx.GraphProto, name: str) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="leapfrog-suite-onnxruntime",
        producer_version="1",
        # The module's name before it was renamed: changing it would change every model's bytes.
        doc_string=f"leapfrog test model '{name}' (built by build_models.py)",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp(rng: np.random.Generator) -> onnx.ModelProto:
    inits = [
        _init("w1", _f32(rng, MLP_IN, MLP_HIDDEN, scale=MLP_IN**-0.5)),
        _init("b1", _f32(rng, MLP_HIDDEN, scale=0.1)),
        _init("w2", _f32(rng, MLP_HIDDEN, MLP_HIDDEN, scale=MLP_HIDDEN**-0.5)),
        _init("b2", _f32(rng, MLP_HIDDEN, scale=0.1)),
        _init("w3", _f32(rng, MLP_OUT, MLP_HIDDEN, scale=MLP_HIDDEN**-0.5)),  # used with transB=1
        _init("b3", _f32(rng, MLP_OUT, scale=0.1)),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"], alpha=0.5, beta=2.0),
        helper.make_node("Tanh", ["h2"], ["a2"]),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, MLP_IN])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [BATCH, MLP_OUT]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [BATCH, MLP_OUT]),
        ],
        inits,
    )
    return _model(graph, "mlp")


def _bn(rng: np.random.Generator, prefix: str, ch: int) -> list[TensorProto]:
    return [
        _init(f"{prefix}_scale", (1.0 + 0.1 * rng.standard_normal(ch)).astype(np.float32)),
        _init(f"{prefix}_bias", _f32(rng, ch, scale=0.1)),
        _init(f"{prefix}_mean", _f32(rng, ch, scale=0.1)),
        _init(f"{prefix}_var", (0.5 + rng.random(ch)).astype(np.float32)),
    ]


def cnn(rng: np.random.Generator) -> onnx.ModelProto:
    c1, c2 = 8, 16
    inits = [
        _init("conv1_w", _f32(rng, c1, CNN_CH, 3, 3, scale=(CNN_CH * 9) ** -0.5)),
        _init("conv1_b", _f32(rng, c1, scale=0.1)),
        *_bn(rng, "bn1", c1),
        _init("conv2_w", _f32(rng, c2, c1, 3, 3, scale=(c1 * 9) ** -0.5)),
        _init("conv2_b", _f32(rng, c2, scale=0.1)),
        *_bn(rng, "bn2", c2),
        _init("conv3_w", _f32(rng, c2, 1, 3, 3, scale=1 / 3)),  # depthwise (group=c2), strided
        _init("fc_w", _f32(rng, c2, CNN_OUT, scale=c2**-0.5)),
        _init("fc_b", _f32(rng, CNN_OUT, scale=0.1)),
    ]
    bn = {"epsilon": 1e-5}
    nodes = [
        helper.make_node("Conv", ["x", "conv1_w", "conv1_b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1_scale", "bn1_bias", "bn1_mean", "bn1_var"], ["n1"], **bn),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2_w", "conv2_b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "bn2_scale", "bn2_bias", "bn2_mean", "bn2_var"], ["n2"], **bn),
        helper.make_node("Relu", ["n2"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p2"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p2", "conv3_w"], ["c3"], group=c2, strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, CNN_CH, CNN_HW, CNN_HW])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [BATCH, CNN_OUT])],
        inits,
    )
    return _model(graph, "cnn")


def transformer(rng: np.random.Generator) -> onnx.ModelProto:
    """One pre-norm encoder block: x + MHA(LN(x)), then h + FFN(LN(h)) with a Gelu FFN."""
    d, h, dh = D_MODEL, HEADS, D_MODEL // HEADS
    s = d**-0.5
    inits = [
        _init("ln1_g", (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32)),
        _init("ln1_b", _f32(rng, d, scale=0.1)),
        _init("wq", _f32(rng, d, d, scale=s)),
        _init("wk", _f32(rng, d, d, scale=s)),
        _init("wv", _f32(rng, d, d, scale=s)),
        _init("bq", _f32(rng, d, scale=0.1)),
        _init("bk", _f32(rng, d, scale=0.1)),
        _init("bv", _f32(rng, d, scale=0.1)),
        _init("wo", _f32(rng, d, d, scale=s)),
        _init("bo", _f32(rng, d, scale=0.1)),
        _init("ln2_g", (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32)),
        _init("ln2_b", _f32(rng, d, scale=0.1)),
        _init("w_ff1", _f32(rng, d, D_FF, scale=s)),
        _init("b_ff1", _f32(rng, D_FF, scale=0.1)),
        _init("w_ff2", _f32(rng, D_FF, d, scale=D_FF**-0.5)),
        _init("b_ff2", _f32(rng, d, scale=0.1)),
        _init("heads_shape", np.array([0, 0, h, dh], dtype=np.int64)),  # 0 = copy that dim (N, S)
        _init("merge_shape", np.array([0, 0, d], dtype=np.int64)),
        _init("attn_scale", np.array(dh**-0.5, dtype=np.float32)),
    ]
    nodes = [helper.make_node("LayerNormalization", ["x", "ln1_g", "ln1_b"], ["ln1"], axis=-1, epsilon=1e-5)]
    for name in "qkv":
        nodes += [
            helper.make_node("MatMul", ["ln1", f"w{name}"], [f"{name}_mm"]),
            helper.make_node("Add", [f"{name}_mm", f"b{name}"], [f"{name}_lin"]),
            helper.make_node("Reshape", [f"{name}_lin", "heads_shape"], [f"{name}_4d"]),
            # q, v: (N, H, S, dh); k: (N, H, dh, S) so that q @ k is the score matrix
            helper.make_node(
                "Transpose", [f"{name}_4d"], [f"{name}_h"], perm=[0, 2, 3, 1] if name == "k" else [0, 2, 1, 3]
            ),
        ]
    nodes += [
        helper.make_node("MatMul", ["q_h", "k_h"], ["scores_raw"]),
        helper.make_node("Mul", ["scores_raw", "attn_scale"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "v_h"], ["ctx_h"]),
        helper.make_node("Transpose", ["ctx_h"], ["ctx_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctx_t", "merge_shape"], ["ctx"]),
        helper.make_node("MatMul", ["ctx", "wo"], ["o_mm"]),
        helper.make_node("Add", ["o_mm", "bo"], ["o"]),
        helper.make_node("Add", ["x", "o"], ["h1"]),
        helper.make_node("LayerNormalization", ["h1", "ln2_g", "ln2_b"], ["ln2"], axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["ln2", "w_ff1"], ["ff1_mm"]),
        helper.make_node("Add", ["ff1_mm", "b_ff1"], ["ff1"]),
        helper.make_node("Gelu", ["ff1"], ["ff1_act"], approximate="none"),
        helper.make_node("MatMul", ["ff1_act", "w_ff2"], ["ff2_mm"]),
        helper.make_node("Add", ["ff2_mm", "b_ff2"], ["ff2"]),
        helper.make_node("Add", ["h1", "ff2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "transformer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, SEQ, D_MODEL])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [BATCH, SEQ, D_MODEL]),
            helper.make_tensor_value_info("attn", TensorProto.FLOAT, [BATCH, HEADS, SEQ, SEQ]),
        ],
        inits,
    )
    return _model(graph, "transformer")


def quant(rng: np.random.Generator) -> onnx.ModelProto:
    """int8 pipeline: QuantizeLinear -> QLinearConv -> QLinearMatMul -> DequantizeLinear ->
    DynamicQuantizeLinear -> MatMulInteger -> scale -> logits.

    Intermediate integer tensors are graph outputs too, so that the tests can
    check them exactly.
    """
    flat = Q_CH * Q_HW * Q_HW
    conv_w_scale = np.full(Q_CH, 1 / 64, dtype=np.float32) * (1 + np.arange(Q_CH, dtype=np.float32) / 8)
    inits = [
        _init("x_scale", np.array(1 / 32, dtype=np.float32)),
        _init("x_zp", np.array(128, dtype=np.uint8)),
        _init("conv_w", rng.integers(-127, 128, size=(Q_CH, 1, 3, 3), dtype=np.int8)),
        _init("conv_w_scale", conv_w_scale),  # per output channel
        _init("conv_w_zp", np.zeros(Q_CH, dtype=np.int8)),
        _init("conv_b", rng.integers(-2000, 2000, size=Q_CH, dtype=np.int32)),  # scale x_scale * w_scale
        _init("conv_y_scale", np.array(1 / 4, dtype=np.float32)),
        _init("conv_y_zp", np.array(100, dtype=np.uint8)),
        _init("flat_shape", np.array([0, flat], dtype=np.int64)),
        _init("fc_w", rng.integers(-127, 128, size=(flat, Q_HIDDEN), dtype=np.int8)),
        _init("fc_w_scale", np.array(1 / 256, dtype=np.float32)),
        _init("fc_w_zp", np.array(0, dtype=np.int8)),
        _init("fc_y_scale", np.array(1.0, dtype=np.float32)),
        _init("fc_y_zp", np.array(128, dtype=np.uint8)),
        _init("out_w", rng.integers(-127, 128, size=(Q_HIDDEN, Q_OUT), dtype=np.int8)),
        _init("out_w_zp", np.array(3, dtype=np.int8)),
        _init("out_w_scale", np.array(1 / 128, dtype=np.float32)),
        _init("out_b", _f32(rng, Q_OUT, scale=0.5)),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"]),
        helper.make_node(
            "QLinearConv",
            ["xq", "x_scale", "x_zp", "conv_w", "conv_w_scale", "conv_w_zp", "conv_y_scale", "conv_y_zp", "conv_b"],
            ["conv_q"],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Reshape", ["conv_q", "flat_shape"], ["flat_q"]),
        helper.make_node(
            "QLinearMatMul",
            ["flat_q", "conv_y_scale", "conv_y_zp", "fc_w", "fc_w_scale", "fc_w_zp", "fc_y_scale", "fc_y_zp"],
            ["fc_q"],
        ),
        helper.make_node("DequantizeLinear", ["fc_q", "fc_y_scale", "fc_y_zp"], ["fc"]),
        helper.make_node("DynamicQuantizeLinear", ["fc"], ["h_q", "h_scale", "h_zp"]),
        helper.make_node("MatMulInteger", ["h_q", "out_w", "h_zp", "out_w_zp"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["acc_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["h_scale", "out_w_scale"], ["acc_scale"]),
        helper.make_node("Mul", ["acc_f", "acc_scale"], ["out_mm"]),
        helper.make_node("Add", ["out_mm", "out_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "quant",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [BATCH, 1, Q_HW, Q_HW])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [BATCH, Q_OUT]),
            helper.make_tensor_value_info("conv_q", TensorProto.UINT8, [BATCH, Q_CH, Q_HW, Q_HW]),
            helper.make_tensor_value_info("fc_q", TensorProto.UINT8, [BATCH, Q_HIDDEN]),
            helper.make_tensor_value_info("acc", TensorProto.INT32, [BATCH, Q_OUT]),
        ],
        inits,
    )
    return _model(graph, "quant")


BUILDERS: dict[str, Callable[[np.random.Generator], onnx.ModelProto]] = {
    "mlp": mlp,
    "cnn": cnn,
    "transformer": transformer,
    "quant": quant,
}
MODELS = tuple(BUILDERS)


def build_all() -> dict[str, onnx.ModelProto]:
    """Every model, each from its own seeded generator (adding one never changes another)."""
    return {name: fn(np.random.default_rng([WEIGHT_SEED, i])) for i, (name, fn) in enumerate(BUILDERS.items())}


def make_input(name: str, rng: np.random.Generator, batch: int) -> np.ndarray:
    """The fixed input of one model (stored in the golden file; the tests never draw it)."""
    if name == "mlp":
        return _f32(rng, batch, MLP_IN)
    if name == "cnn":
        return _f32(rng, batch, CNN_CH, CNN_HW, CNN_HW)
    if name == "transformer":
        return _f32(rng, batch, SEQ, D_MODEL)
    if name == "quant":
        # On a 1/64 grid: every odd multiple is a tie for QuantizeLinear (x_scale=1/32), which ONNX
        # rounds half to even; the range runs a little past uint8's (saturation at both ends).
        return (rng.integers(-300, 301, size=(batch, 1, Q_HW, Q_HW)) / 64).astype(np.float32)
    raise KeyError(name)
