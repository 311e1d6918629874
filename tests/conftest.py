"""Shared fixtures.  Unit tests need no emulator; integration tests are marked."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import TargetConfig, load_project

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _private_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never write to the user's history database.

    Session scope, so it is in place before the module-scoped fixtures that run
    ``leapfrog`` as a subprocess (a function-scoped one would come after them).
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEAPFROG_DB", str(tmp_path_factory.getbasetemp() / "history.sqlite"))
        yield


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture
def write_suite(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Make a suite folder: write_suite("name", {"test_a.py": "..."}, toml="...")."""

    def make(name: str, files: dict[str, str], toml: str = 'description = "test suite"\n') -> Path:
        folder = tmp_path / "suites" / name
        folder.mkdir(parents=True)
        (folder / "suite.toml").write_text(textwrap.dedent(toml))
        for fname, body in files.items():
            (folder / fname).write_text(textwrap.dedent(body))
        return folder

    return make


@pytest.fixture
def native_config() -> TargetConfig:
    return load_project(ROOT).targets["native"]


def with_options(cfg: TargetConfig, **kw: object) -> TargetConfig:
    return dataclasses.replace(cfg, options=dataclasses.replace(cfg.options, **kw))
