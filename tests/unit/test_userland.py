"""harness.userland: the qemu version and unshare's options asked ahead, in a background thread."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import qemu_user, userland


def logging_qemu(folder: Path, *, works: bool = True) -> tuple[Path, Path]:
    """A fake qemu-user that logs each start; one that ``works=False`` cannot be executed at all."""
    log = folder / "starts.log"
    path = folder / "qemu-riscv64"
    path.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'if [ "$1" = --version ]; then echo "qemu-riscv64 version 10.0.13 (Debian)"; exit 0; fi\n'
        "printf 'rv64\\nrva23u64\\n'\n"
    )
    path.chmod(0o755 if works else 0o644)
    return path, log


@pytest.fixture(autouse=True)
def _fresh_describe() -> None:
    qemu_user.describe.cache_clear()


def test_a_warmed_version_is_answered_without_starting_qemu_again(tmp_path: Path) -> None:
    binary, log = logging_qemu(tmp_path)
    userland.warm_up(str(binary)).join(10)
    assert log.read_text().splitlines() == ["--version", "-cpu help"]
    assert userland.qemu_version(str(binary)) == ("qemu-riscv64 version 10.0.13 (Debian)", "10.0.13")
    assert len(log.read_text().splitlines()) == 2  # the facts found it cached


def test_a_warm_up_that_fails_is_silent_and_the_later_call_asks_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary, log = logging_qemu(tmp_path, works=False)
    userland.warm_up(str(binary)).join(10)
    assert capsys.readouterr().err == ""  # no thread traceback
    binary.chmod(0o755)
    assert userland.qemu_version(str(binary))[1] == "10.0.13"  # not cached as failed
    assert log.read_text().splitlines() == ["--version", "-cpu help"]


def test_the_warm_up_asks_unshare_once_for_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []
    userland.unshare_with_wd.cache_clear()
    monkeypatch.setattr(userland.shutil, "which", lambda _name: asked.append(True) or "")
    userland.warm_up("").join(10)
    assert userland.unshare_with_wd() == ""
    assert asked == [True]
    userland.unshare_with_wd.cache_clear()
