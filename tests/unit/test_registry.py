from __future__ import annotations

import dataclasses

import pytest

from harness.targets import KINDS, REGISTRY, Target, backend_class


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_backend_imports_and_declares_its_kind(kind: str) -> None:
    cls = backend_class(kind)
    assert issubclass(cls, Target)
    assert cls.kind == kind
    assert dataclasses.is_dataclass(cls.Options)
    assert cls.__module__ == REGISTRY[kind].split(":")[0]
