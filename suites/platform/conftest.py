"""Shared fixtures for the platform suite (stdlib + pytest only).

The ``metrics`` fixture comes from the harness probe plugin and ``arch`` from
``leapfrog_suite`` (stdlib only, next to the probe in the target), not from here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

import pytest
from leapfrog_suite import arch

#: Fixtures for the test modules.
__all__ = ["arch"]

CFunc = Callable[..., Any]
Binder = Callable[..., CFunc]


def _load(name: str, fallback: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(name) or fallback
    return ctypes.CDLL(path, use_errno=True)


@pytest.fixture(scope="session")
def libc() -> ctypes.CDLL:
    return _load("c", "libc.so.6")


@pytest.fixture(scope="session")
def libm() -> ctypes.CDLL:
    return _load("m", "libm.so.6")


@pytest.fixture(scope="session")
def cfunc() -> Binder:
    """Bind a fresh foreign function object (``lib[name]`` is never cached,
    so tests cannot clobber each other's argtypes/restype)."""

    def bind(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> CFunc:
        try:
            func = lib[name]
        except AttributeError:
            pytest.skip(f"{name} is not exported by {lib._name}")
        func.restype = restype
        func.argtypes = list(argtypes)
        return func

    return bind
