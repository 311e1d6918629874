"""Backends by TOML ``kind``.

The registry (:data:`harness.kinds.KINDS`) maps a kind to a dotted path; a
backend module is imported only when a target of that kind is used, so a missing optional SDK is a clear
error about that target and not a broken ``import harness``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.errors import ConfigError
from harness.kinds import KINDS as _KINDS
from harness.targets.base import Completed, Target

if TYPE_CHECKING:
    from harness.config import TargetConfig

REGISTRY: dict[str, str] = {kind: info.backend for kind, info in _KINDS.items()}
KINDS = tuple(REGISTRY)

__all__ = ["KINDS", "REGISTRY", "Completed", "Target", "backend_class", "make_target"]


def backend_class(kind: str) -> type[Target]:
    try:
        dotted = REGISTRY[kind]
    except KeyError:
        raise ConfigError(f'unknown target kind "{kind}"; expected one of: {", ".join(KINDS)}.') from None
    module_name, _, cls_name = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f'target kind "{kind}" needs the Python package "{e.name}"; run: pip install {e.name}') from e
    cls: type[Target] = getattr(module, cls_name)
    return cls


def make_target(
    config: TargetConfig,
    *,
    packages: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Target:
    return backend_class(config.kind)(config, packages=packages, progress=progress)
