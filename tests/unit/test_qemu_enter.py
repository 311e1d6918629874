"""qemu_enter's last step, run for real in a forked child: change to the working folder natively, then exec.

The namespaces and the chroot need root and Linux >= 6.7; they run in
tests/integration/test_profiles.py.  What happens after the chroot (the
folder, the exec and their exit statuses) needs neither, and runs here.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness import qemu_enter, qemu_wrapper

PWD = [sys.executable, "-I", "-c", "import os; print(os.getcwd())"]


def enter(wd: str | None, argv: list[str]) -> tuple[int, str, str]:
    """Run :func:`qemu_enter.enter` in a forked child: (exit status, stdout, stderr)."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs or exits
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.chdir("/")  # where qemu_enter stands after its chroot
            qemu_enter.enter(wd, argv)
        finally:
            os._exit(99)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r) as out, os.fdopen(err_r) as err:
        stdout, stderr = out.read(), err.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), stdout, stderr


def test_the_command_runs_in_the_working_folder(tmp_path: Path) -> None:
    assert enter(str(tmp_path), PWD) == (0, f"{tmp_path}\n", "")


def test_a_relative_working_folder_is_relative_to_the_roots_slash(tmp_path: Path) -> None:
    assert enter(str(tmp_path).lstrip("/"), PWD) == (0, f"{tmp_path}\n", "")


def test_without_a_working_folder_the_command_runs_in_slash() -> None:
    assert enter(None, PWD) == (0, "/\n", "")


def test_a_missing_working_folder_exits_125_naming_it_and_never_runs_the_command(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    code, stdout, stderr = enter(str(tmp_path / "no" / "such"), ["touch", str(ran)])
    assert (code, stdout) == (125, "")
    assert stderr == qemu_enter.wd_message(str(tmp_path / "no" / "such"), "No such file or directory")
    assert stderr.startswith("leapfrog: cannot change to the working folder ")
    assert str(tmp_path / "no" / "such") in stderr
    assert not ran.exists()


def test_a_working_folder_that_is_a_file_exits_125(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    code, _, stderr = enter(str(tmp_path / "f"), PWD)
    assert code == 125
    assert stderr == qemu_enter.wd_message(str(tmp_path / "f"), "Not a directory")


def test_a_missing_program_exits_127_and_one_that_cannot_run_126(tmp_path: Path) -> None:
    code, _, stderr = enter(str(tmp_path), ["no-such-program-leapfrog"])
    assert code == 127
    assert stderr == "leapfrog: failed to run command 'no-such-program-leapfrog': No such file or directory\n"
    (tmp_path / "plain").write_text("")
    assert enter(str(tmp_path), [str(tmp_path / "plain")])[0] == 126


def test_the_working_folder_message_never_reads_as_a_namespace_failure() -> None:
    # The chroot backend turns exit 125 with this prefix into a TargetError; a missing folder stays exit 125.
    assert qemu_enter.PREFIX not in qemu_enter.wd_message("/no/such", "No such file or directory")
    assert "chroot: failed to run command" not in qemu_enter.wd_message("/no/such", "No such file or directory")


@pytest.mark.parametrize(
    "args",
    [
        ["/r", "/i", "/m", "/q", "/in", "--wd=/tmp", "--"],  # no command
        ["/r", "/i", "/m", "/q", "/in", "--wd=", "--", "true"],  # an empty folder
        ["/r", "/i", "/m", "/q", "/in", "--wd=/tmp", "true"],  # no --
        ["/r", "/i", "/m", "/q", "/in", "--wd=/tmp"],  # nothing after the folder
    ],
)
def test_a_malformed_command_line_with_a_working_folder_is_refused(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert qemu_enter.main(args) == 2
    err = capsys.readouterr().err
    assert "usage: qemu_enter.py ROOT INTERPRETER MOUNTPOINT QEMU_DIR INSIDE -- ARGV..." in err
    assert "qemu_enter.py ROOT INTERPRETER MOUNTPOINT QEMU_DIR INSIDE --wd=DIR -- ARGV..." in err


def test_the_command_line_names_the_working_folder_before_the_command() -> None:
    assert qemu_enter.parse(["/r", "/i", "/m", "/q", "/in", "--wd=a b", "--", "pwd", "--wd=x"]) == (
        ["/r", "/i", "/m", "/q", "/in"],
        "a b",
        ["pwd", "--wd=x"],
    )
    assert qemu_enter.parse(["/r", "/i", "/m", "/q", "/in", "--", "--wd=/tmp"]) == (
        ["/r", "/i", "/m", "/q", "/in"],
        None,
        ["--wd=/tmp"],
    )


def test_a_profile_target_passes_the_folder_to_qemu_enter_and_keeps_its_exit_125(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.targets.base import Completed
    from tests.unit.test_qemu_user import private_target

    t, _ = private_target(tmp_path, monkeypatch)
    said = qemu_enter.wd_message("/no/such", "No such file or directory")
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **_kw: object) -> Completed:
        seen.append(argv)
        return Completed(argv=argv, exit_code=125, signal=None, stdout="", stderr=said, wall=0.0)

    monkeypatch.setattr("harness.targets.chroot.run_process", fake_run)
    done = t.run(["pwd"], timeout=10, cwd="/no/such")  # no TargetError: the command's folder is missing, as env -C says
    assert (done.exit_code, done.stderr) == (125, said)
    assert seen[0][-4:] == [qemu_wrapper.INSIDE, "--wd=/no/such", "--", "pwd"]
    assert "/usr/bin/env" not in seen[0]  # no emulated env -C started for the folder
