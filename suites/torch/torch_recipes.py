"""Computations that make_golden.py and the tests must do the same way."""

from __future__ import annotations

import torch
from torch import nn

INPUT_SEED = 777
QUANT_SEED = 4321
QUANT_ENGINES = ("fbgemm", "x86", "onednn", "qnnpack")


def quant_model_and_input() -> tuple[nn.Module, torch.Tensor]:
    """A float two-layer Linear model and its input, both from a fixed seed."""
    gen = torch.Generator().manual_seed(QUANT_SEED)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8))
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    model.eval()
    return model, torch.randn(6, 64, generator=gen)


def dynamic_quantized_output(model: nn.Module, x: torch.Tensor, engine: str) -> torch.Tensor:
    """``quantize_dynamic`` (int8 weights, activations quantized per batch) on one engine."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
        with torch.no_grad():
            return qmodel(x)
    finally:
        torch.backends.quantized.engine = previous


# The streams drawn by torch's float32 normal kernel on 16 or more values: x86-64 builds
# (AVX2 / AVX512 kernels) run its Box-Muller with avx_mathfun.h's polynomial log and
# sincos, other CPUs with libm's logf/sinf/cosf, so the last bits may differ.
VECTORISED_NORMAL = ("randn_f32_long", "normal_mean_std", "global_randn")


def rng_streams() -> dict[str, torch.Tensor]:
    """Streams of torch's CPU generator from fixed seeds.

    Sizes below and above 16 elements: torch fills normal tensors of 16 or more
    floats with a vectorised Box-Muller kernel and shorter ones one by one.
    """
    out: dict[str, torch.Tensor] = {}
    gen = torch.Generator().manual_seed(12345)
    out["rand_f32"] = torch.rand(1000, generator=gen)
    out["rand_f64"] = torch.rand(100, generator=gen, dtype=torch.float64)
    out["randint"] = torch.randint(-1000, 1000, (1000,), generator=gen)
    out["randperm"] = torch.randperm(200, generator=gen)
    out["randn_f32_short"] = torch.randn(7, generator=gen)
    out["randn_f32_long"] = torch.randn(1000, generator=gen)
    out["randn_f64_long"] = torch.randn(100, generator=gen, dtype=torch.float64)
    out["bernoulli"] = torch.bernoulli(torch.full((500,), 0.3), generator=gen)
    out["multinomial"] = torch.multinomial(torch.arange(1.0, 11.0), 200, replacement=True, generator=gen)
    out["normal_mean_std"] = torch.normal(2.0, 3.0, (64,), generator=gen)
    torch.manual_seed(2024)  # the global generator, as most user code seeds it
    out["global_randn"] = torch.randn(32)
    return out
