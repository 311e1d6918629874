"""harness.userland: the qemu version asked ahead in a background thread; an unshare without --wd."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import qemu_user, userland
from harness.targets._proc import WAITING


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


def test_a_warmed_version_is_asked_once_a_command_waits_and_not_again(tmp_path: Path) -> None:
    binary, log = logging_qemu(tmp_path)
    WAITING.clear()  # no command has started yet (set again below)
    thread = userland.warm_qemu_version(str(binary))
    thread.join(0.3)
    assert not log.exists()  # nothing competes with the target's start
    WAITING.set()
    thread.join(10)
    assert log.read_text().splitlines() == ["--version", "-cpu help"]
    assert userland.qemu_version(str(binary)) == ("qemu-riscv64 version 10.0.13 (Debian)", "10.0.13")
    assert len(log.read_text().splitlines()) == 2  # the facts found it cached


def test_a_warm_up_that_fails_is_silent_and_the_later_call_asks_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary, log = logging_qemu(tmp_path, works=False)
    WAITING.set()
    userland.warm_qemu_version(str(binary)).join(10)
    assert capsys.readouterr().err == ""  # no thread traceback
    binary.chmod(0o755)
    assert userland.qemu_version(str(binary))[1] == "10.0.13"  # not cached as failed
    assert log.read_text().splitlines() == ["--version", "-cpu help"]


def test_an_unshare_that_refuses_wd_is_remembered_and_only_then(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(userland, "_REFUSED", set())
    old = "unshare: unrecognized option '--root=/r'\nTry 'unshare --help' for more information.\n"
    assert not userland.unshare_refused(None, 1, "", old)  # unshare was not used
    assert not userland.unshare_refused("/tmp", 1, "out", old)  # the command ran and printed
    assert not userland.unshare_refused("/tmp", 2, "", "unshare: unrecognized option '--x'\n")
    assert userland.unshare_with_wd() in ("", userland._which_unshare())
    assert userland.unshare_refused("/tmp", 1, "", old)
    assert userland.unshare_with_wd() == ""
