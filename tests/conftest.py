"""Shared fixtures.  Unit tests need no emulator; integration tests are marked."""

from __future__ import annotations

import dataclasses
import getpass
import os
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import TargetConfig, load_project

ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session: pytest.Session) -> None:
    """Unmount what a killed test run left in pytest's temp folders, before pytest cleans them.

    pytest deletes its old numbered temp folders when a session first asks for
    one.  A test run that was killed while a chroot was up leaves binds of the
    host's /dev, /sys and /proc in there, and that deletion would go through
    them.  As root, unmount them first (slave first, so nothing propagates);
    if one will not go, stop the session rather than let pytest delete through it.
    """
    if os.geteuid() != 0:
        return  # only root can have made the mounts
    from harness.mounts import mounts_under, unmount_under

    temp_root = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}"
    if not mounts_under(temp_root):
        return
    left = []
    for folder in sorted(temp_root.iterdir()):
        if folder.is_symlink() or not folder.is_dir() or _held_by_a_live_session(folder):
            continue  # another pytest session, still running, owns it: its chroots are live
        if mounts_under(folder):
            left += unmount_under(folder)
    if left:
        pytest.exit(
            f"mounts left in pytest's temp folders by an earlier run could not be removed: {', '.join(left)}; "
            "unmount them by hand (umount -R -l PATH) before running the tests, so pytest never deletes through them.",
            returncode=3,
        )


def _held_by_a_live_session(folder: Path) -> bool:
    """pytest writes its pid into a numbered temp folder's ``.lock`` and removes it at exit; a live pid holds it."""
    try:
        pid = int((folder / ".lock").read_text().strip())
    except (OSError, ValueError):
        return False  # no lock: the session ended (or was killed before writing it)
    return pid > 0 and pid != os.getpid() and Path(f"/proc/{pid}").exists()


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
