"""Shared helpers for the torch suite.

``import torch`` costs about 7 s under qemu-user, so it happens once, here.
Weights (``golden/<model>.pt``, a ``state_dict``) and golden outputs
(``golden/*.npz``) are written by ``make_golden.py`` on a native x86-64 host
with the image's torch version. Every numeric comparison goes through
:func:`assert_close` (dtypes must match) or :func:`assert_same` (values, not
bits, must match): ``leapfrog_checks``' own with those options, which record
the error as metrics and fail with the numbers in the message.

The ``metrics`` fixture comes from the harness probe plugin, not from here.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import leapfrog_checks
import leapfrog_suite
import numpy as np
import torch
import torch_models
from leapfrog_checks import count_mismatches
from leapfrog_suite import Metrics, arch, bench_repeats, timed
from torch import nn

#: Fixtures for the test modules, and what they import (``from conftest import timed``).
__all__ = ["Metrics", "arch", "bench_repeats", "count_mismatches", "timed"]

GOLDEN = Path(__file__).parent / "golden"

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
    return leapfrog_suite.golden_meta(GOLDEN)


def load_model(name: str) -> nn.Module:
    """The model with the shipped weights, in eval mode (``weights_only``: a state_dict needs no pickle code)."""
    model = torch_models.build(name)
    state = torch.load(GOLDEN / f"{name}.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def golden_input(name: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, np.ndarray]]:
    """The fixed input, labels and every golden array of one model."""
    gold = load_golden(name)
    return torch.from_numpy(gold["in.x"]), torch.from_numpy(gold["in.y"]), gold


def assert_close(name: str, actual: Any, golden: Any, *, rtol: float, atol: float, metrics: Metrics) -> None:
    """``leapfrog_checks.assert_close`` with ``strict_dtype=True``: the dtype must be the golden's."""
    leapfrog_checks.assert_close(name, actual, golden, rtol=rtol, atol=atol, metrics=metrics, strict_dtype=True)


def assert_same(name: str, actual: Any, golden: Any, *, metrics: Metrics) -> None:
    """``leapfrog_checks.assert_same`` with ``bits=False``: equal values (NaN meets NaN, -0.0 equals 0.0)."""
    leapfrog_checks.assert_same(name, actual, golden, metrics=metrics, bits=False)


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
