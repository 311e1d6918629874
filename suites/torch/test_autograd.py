"""Autograd and serialisation checks that need no golden: they compare the target with itself."""

from __future__ import annotations

import io

import torch
from conftest import GOLDEN, Metrics, assert_same
from torch.nn import functional as F


def test_gradcheck(metrics: Metrics) -> None:
    """Analytical gradients (float64) of conv, layer norm, GELU, softmax and matmul match finite differences."""
    gen = torch.Generator().manual_seed(99)

    def fn(img: torch.Tensor, kernel: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
        h = F.conv2d(img, kernel, padding=1)  # (1, 2, 4, 4)
        h = F.layer_norm(h.flatten(1), (h.flatten(1).shape[1],))
        h = F.gelu(h.reshape(1, 2, 16) @ proj)  # (1, 2, 3)
        return F.softmax(h, dim=-1)

    inputs = (
        torch.randn(1, 1, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 1, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True),
        torch.randn(16, 3, generator=gen, dtype=torch.float64, requires_grad=True),
    )
    # float64 central differences with eps=1e-6 are accurate to ~1e-9 here; gradcheck's
    # default atol 1e-5 / rtol 1e-3 only fails on a wrong derivative.
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)
    assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)
    metrics["checked_inputs"] = sum(t.numel() for t in inputs)


def test_state_dict_roundtrip(metrics: Metrics) -> None:
    """The shipped x86-64 weight files load with weights_only and survive a save/load on the target bit for bit."""
    for name in ("mlp", "cnn", "transformer"):
        state = torch.load(GOLDEN / f"{name}.pt", map_location="cpu", weights_only=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        again = torch.load(buffer, map_location="cpu", weights_only=True)
        assert list(again) == list(state), f"{name}: keys or their order changed"
        for key, value in state.items():
            assert_same(f"{name}.{key}", again[key], value, metrics=metrics)
        metrics[f"{name}.tensors"] = len(state)
        metrics[f"{name}.bytes_saved_here"] = buffer.getbuffer().nbytes
