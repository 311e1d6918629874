"""Dynamic int8 quantization of Linear layers on every quantized engine torch may have."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_recipes
from conftest import Metrics, assert_close, deprecations, golden_meta, load_golden

# Against the float model: int8 weights (per tensor) and 8-bit activations (7-bit with
# fbgemm/x86's reduce_range) round every value to a step of range/255 (or /127) of its
# tensor, so the error scales with the output's range, not with each value: within 5% of
# the largest float output (observed 1-1.5%). A broken int8 kernel is off by the whole range.
QUANT_VS_FLOAT_RANGE_FRACTION = 5e-2
# Against the same engine's x86-64 golden: identical int8 arithmetic, only the float
# (de)quantization around it may round differently.
SAME_ENGINE_RTOL, SAME_ENGINE_ATOL = 1e-5, 1e-6


def _range_atol(reference: np.ndarray) -> float:
    return QUANT_VS_FLOAT_RANGE_FRACTION * float(np.abs(reference).max())


def _facts(metrics: Metrics) -> list[str]:
    engines = list(torch.backends.quantized.supported_engines)
    metrics["supported_engines"] = ",".join(engines)
    metrics["default_engine"] = torch.backends.quantized.engine
    metrics["torch_version"] = torch.__version__
    return engines


@pytest.mark.parametrize("engine", torch_recipes.QUANT_ENGINES)
def test_dynamic_quantized_linear(engine: str, arch: str, metrics: Metrics) -> None:
    """``quantize_dynamic`` on this engine answers like the float model and like the golden of the same engine."""
    engines = _facts(metrics)
    if engine not in engines:
        pytest.skip(
            f"quantized engine '{engine}' is not built into torch {torch.__version__} on {arch} "
            f"(supported_engines={engines})"
        )
    gold = load_golden("quant")
    model, x = torch_recipes.quant_model_and_input()
    with deprecations(metrics):
        out = torch_recipes.dynamic_quantized_output(model, x, engine)
    assert_close("vs_float", out, gold["float"], rtol=0.0, atol=_range_atol(gold["float"]), metrics=metrics)
    key = f"engine.{engine}"
    metrics["golden_has_engine"] = key in gold
    if key in gold:
        assert_close("vs_golden", out, gold[key], rtol=SAME_ENGINE_RTOL, atol=SAME_ENGINE_ATOL, metrics=metrics)


def test_quantize_dynamic_default_engine(arch: str, metrics: Metrics) -> None:
    """What a user gets from ``quantize_dynamic`` without choosing an engine."""
    engines = _facts(metrics)
    engine = torch.backends.quantized.engine
    gold = load_golden("quant")
    model, x = torch_recipes.quant_model_and_input()
    try:
        with deprecations(metrics), torch.no_grad():
            qmodel = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            out = qmodel(x)
    except RuntimeError as exc:
        if engine == "none":
            metrics["error"] = str(exc).splitlines()[0]
            pytest.xfail(
                f"torch {torch.__version__} on {arch} has no quantized engine (supported_engines={engines}, "
                f"golden host had {golden_meta()['quantized_engines']}): quantize_dynamic fails with: "
                f"{str(exc).splitlines()[0]}"
            )
        raise
    assert_close("vs_float", out, gold["float"], rtol=0.0, atol=_range_atol(gold["float"]), metrics=metrics)
