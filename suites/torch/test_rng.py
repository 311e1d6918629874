"""torch's CPU random streams from fixed seeds are bit-identical to the x86-64 golden streams."""

from __future__ import annotations

import pytest
import torch
import torch_recipes
from conftest import Metrics, assert_close, assert_same, count_mismatches, golden_meta, load_golden

GOLDEN = load_golden("rng")
X86_KERNELS = ("AVX2", "AVX512")  # torch.backends.cpu capabilities whose normal kernel uses avx_mathfun.h


@pytest.fixture(scope="module")
def streams() -> dict[str, torch.Tensor]:
    return torch_recipes.rng_streams()


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_stream(key: str, streams: dict[str, torch.Tensor], metrics: Metrics) -> None:
    """A seeded generator must give the same numbers everywhere: reproducible training depends on it."""
    here = torch.backends.cpu.get_cpu_capability()
    there = golden_meta()["cpu_capability"]
    metrics["cpu_capability"] = here
    metrics["golden_cpu_capability"] = there
    mismatches, _ = count_mismatches(streams[key], GOLDEN[key])
    if mismatches and key in torch_recipes.VECTORISED_NORMAL and (here in X86_KERNELS) != (there in X86_KERNELS):
        # Same uniform draws, a different log/sincos: a few float32 ulps, never a different stream
        # (which would be off by O(1)). Anything beyond that still fails here.
        assert_close(key, streams[key], GOLDEN[key], rtol=1e-5, atol=1e-5, metrics=metrics)
        metrics[f"{key}.mismatches"] = mismatches
        pytest.xfail(
            f"{mismatches} of {GOLDEN[key].size} values differ in the last bits "
            f"(max_abs_err={metrics[f'{key}.max_abs_err']:.3g}): torch's float32 normal kernel for 16 or more "
            f"values uses avx_mathfun.h's polynomial log/sincos on x86-64 (golden: {there}) and libm elsewhere "
            f"(here: {here}); the uniform draws underneath are identical"
        )
    assert_same(key, streams[key], GOLDEN[key], metrics=metrics)
