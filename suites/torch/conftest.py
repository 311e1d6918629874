"""Shared helpers for the torch suite.

``import torch`` costs about 7 s under qemu-user, so it happens once, here.
Weights (``golden/<model>.pt``, a ``state_dict``) and golden outputs
(``golden/*.npz``) are written by ``make_golden.py`` on a native x86-64 host
with the image's torch version. Every numeric comparison goes through
:func:`assert_close` or :func:`assert_same`, which record the error as metrics
and fail with the numbers in the message.

The ``metrics`` fixture comes from the harness probe plugin, not from here.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import leapfrog_checks
import models
import numpy as np
import pytest
import torch
from leapfrog_checks import arch, bench_repeats, timed, value_errors
from torch import nn

#: Fixtures for the test modules, and ``timed`` (``from conftest import timed``).
__all__ = ["arch", "bench_repeats", "timed"]

GOLDEN = Path(__file__).parent / "golden"
Metrics = dict[str, Any]

# Float32 tolerances against the x86-64 golden, for values O(1) out of layers of
# at most a few hundred terms per dot product: CPUs and torch builds differ in
# summation order, FMA use, blocking of GEMM/conv kernels and the polynomials
# behind exp/tanh/erf, a few float32 ulps (observed <= 7e-8 between x86-64 and
# riscv64, and between torch 2.6 and 2.13). A wrong kernel is off by 1e-2 or more.
FORWARD_RTOL, FORWARD_ATOL = 1e-4, 1e-5
# Gradients go through one more pass of the same kernels (backward) and, for the CNN,
# through BatchNorm's batch statistics over 4 samples, which amplify rounding: observed
# up to 4e-5 relative on small entries, 3e-8 absolute. The conv biases in front of a
# BatchNorm have a true gradient of 0 (rounding noise of ~1e-9), which atol covers.
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6


def load_golden(name: str) -> dict[str, np.ndarray]:
    """All arrays of ``golden/<name>.npz``."""
    return leapfrog_checks.load_golden(GOLDEN, name)


def golden_meta() -> dict[str, Any]:
    return leapfrog_checks.golden_meta(GOLDEN)


def load_model(name: str) -> nn.Module:
    """The model with the shipped weights, in eval mode (``weights_only``: a state_dict needs no pickle code)."""
    model = models.build(name)
    state = torch.load(GOLDEN / f"{name}.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def golden_input(name: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, np.ndarray]]:
    """The fixed input, labels and every golden array of one model."""
    gold = load_golden(name)
    return torch.from_numpy(gold["in.x"]), torch.from_numpy(gold["in.y"]), gold


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_close(name: str, actual: Any, golden: Any, *, rtol: float, atol: float, metrics: Metrics) -> None:
    """Fail unless ``|actual - golden| <= atol + rtol * |golden|`` element-wise.

    Records ``<name>.max_abs_err`` and ``<name>.max_rel_err``.
    """
    a = _numpy(actual)
    g = _numpy(golden)
    if a.shape != g.shape or a.dtype != g.dtype:
        pytest.fail(f"{name}: got {a.dtype}{a.shape}, the golden is {g.dtype}{g.shape}")
    diff, rel = value_errors(a, g)
    leapfrog_checks.judge(name, a, g, diff, rel, rtol=rtol, atol=atol, metrics=metrics)


def count_mismatches(actual: Any, golden: Any) -> tuple[int, float]:
    """How many values are not bit-identical, and the largest absolute difference."""
    a = _numpy(actual)
    g = _numpy(golden)
    if a.shape != g.shape or a.dtype != g.dtype:
        pytest.fail(f"got {a.dtype}{a.shape}, the golden is {g.dtype}{g.shape}")
    differ = (a != g) & ~(np.isnan(a) & np.isnan(g)) if a.dtype.kind == "f" else a != g
    diff, _ = value_errors(a, g)
    return int(np.count_nonzero(differ)), float(diff.max(initial=0.0))


def assert_same(name: str, actual: Any, golden: Any, *, metrics: Metrics) -> None:
    """Exact equality (dtype, shape, every value). Records ``<name>.mismatches`` and ``<name>.max_abs_err``."""
    count, max_abs = count_mismatches(actual, golden)
    metrics[f"{name}.mismatches"] = count
    metrics[f"{name}.max_abs_err"] = max_abs
    if count:
        a, g = _numpy(actual), _numpy(golden)
        first = tuple(
            int(i) for i in np.argwhere((a != g) & ~(np.isnan(a) & np.isnan(g)) if a.dtype.kind == "f" else a != g)[0]
        )
        pytest.fail(
            f"{name}: {count} of {a.size} values are not bit-identical to the golden (max_abs_err={max_abs:.3g}); "
            f"first at index {first}: got {a[first]!r}, golden {g[first]!r}"
        )


@contextmanager
def deprecations(metrics: Metrics) -> Iterator[None]:
    """Run an API that newer torch releases deprecate (torch.jit, torch.ao.quantization).

    The deprecation is a fact about the torch version, not a failure: its first
    line is recorded as the ``deprecation`` metric.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    found = [str(w.message).strip().splitlines()[0] for w in caught if issubclass(w.category, DeprecationWarning)]
    if found:
        metrics["deprecation"] = " | ".join(sorted(set(found)))
