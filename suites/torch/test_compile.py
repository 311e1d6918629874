"""``torch.compile`` with the graph-capture-only backends and with the default (inductor) one."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
import torch
from conftest import FORWARD_ATOL, FORWARD_RTOL, Metrics, assert_close, deprecations, golden_input, load_model

MODEL = "cnn"


def _cxx() -> str:
    """The C++ compiler inductor would use ('' if there is none): $CXX, else g++/c++/clang++ on PATH."""
    for candidate in (os.environ.get("CXX", ""), "g++", "c++", "clang++"):
        found = shutil.which(candidate) if candidate else None
        if found:
            return found
    return ""


@pytest.mark.parametrize("backend", ["eager", "aot_eager", "inductor"])
def test_compile(backend: str, arch: str, metrics: Metrics) -> None:
    """The compiled model matches eager mode and the golden logits.

    ``eager`` checks dynamo's bytecode capture alone, ``aot_eager`` adds
    AOTAutograd's decomposition, ``inductor`` (the default) generates and
    compiles C++ kernels on the target.
    """
    metrics["python"] = sys.version.split()[0]
    if not torch._dynamo.is_dynamo_supported():
        pytest.skip(f"torch {torch.__version__} does not support torch.compile on Python {sys.version.split()[0]}")
    if backend == "inductor":
        cxx = _cxx()
        metrics["cxx"] = cxx
        if not cxx:
            pytest.skip(
                f"torch.compile's default backend (inductor) builds C++ kernels on the target and this {arch} "
                "image has no C++ compiler (no $CXX, g++, c++ or clang++ on PATH); dynamo and AOTAutograd are "
                "checked by the eager and aot_eager cases"
            )
    model = load_model(MODEL)
    x, _, gold = golden_input(MODEL)
    torch._dynamo.reset()
    with torch.no_grad():
        expected = model(x)
        with deprecations(metrics):  # torch 2.13's inductor imports its own deprecated torch.jit helpers
            compiled = torch.compile(model, backend=backend)
            got = compiled(x)
    # Compiled code may fuse and reorder float32 operations: same tolerance as across CPUs.
    assert_close("vs_eager", got, expected, rtol=FORWARD_RTOL, atol=FORWARD_ATOL, metrics=metrics)
    assert_close("logits", got, gold["forward"], rtol=FORWARD_RTOL, atol=FORWARD_ATOL, metrics=metrics)
