"""The targets reached over SSH share one delegation (harness.targets.ssh_base), and the VM disk is image work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import terminal
from harness.config import ImageSpec, TargetConfig
from harness.errors import TargetError
from harness.targets import leftovers
from harness.targets.base import Completed
from harness.targets.native import NativeTarget
from harness.targets.qemu_vm import QemuVmTarget
from harness.targets.ssh import SshTarget
from harness.targets.ssh_base import SshBackedTarget

ROOT = Path(__file__).resolve().parents[2]


class RecordingSession:
    """Stands in for SshSession: records what the target asked of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def run(self, argv: list[str], *, timeout: float, env: dict[str, str], cwd: str | None) -> Completed:
        self.calls.append(("run", (argv, timeout, env, cwd)))
        return Completed(argv=argv, exit_code=0, signal=None, stdout="", stderr="", wall=0.0)

    def put(self, local: Path, remote: str) -> None:
        self.calls.append(("put", (local, remote)))

    def get(self, remote: str, local: Path, *, limit: int) -> None:
        self.calls.append(("get", (remote, local, limit)))

    def forward(self, port: int) -> tuple[str, int]:
        self.calls.append(("forward", port))
        return ("127.0.0.1", 40000 + port)


def config(tmp_path: Path, kind: str) -> TargetConfig:
    cls = SshTarget if kind == "ssh" else QemuVmTarget
    options = cls.Options(host="board.lan") if kind == "ssh" else cls.Options()  # type: ignore[call-arg]
    return TargetConfig(
        name=kind,
        kind=kind,
        file=tmp_path / f"{kind}.toml",
        description="",
        arch="riscv64",
        python="python3",
        env={"FROM_FILE": "1", "BOTH": "file"},
        image=None if kind == "ssh" else ImageSpec(),
        options=options,
    )


def with_session(target: SshBackedTarget, session: RecordingSession) -> None:
    if isinstance(target, SshTarget):
        target.session = session  # type: ignore[assignment]
    else:
        target._session = session  # type: ignore[assignment,attr-defined]


@pytest.mark.parametrize("kind", ["ssh", "qemu-vm"])
def test_both_ssh_kinds_run_put_get_and_forward_through_their_session(tmp_path: Path, kind: str) -> None:
    target = SshTarget(config(tmp_path, kind)) if kind == "ssh" else QemuVmTarget(config(tmp_path, kind))
    assert isinstance(target, SshBackedTarget)
    session = RecordingSession()
    with_session(target, session)
    target.run(["true"], timeout=5, env={"BOTH": "call"}, cwd="/tmp")
    target.put(tmp_path / "a", "/tmp/a")
    target.get("/tmp/b", tmp_path / "b", limit=7)
    assert target.forward(8000) == ("127.0.0.1", 48000)
    if kind == "ssh":  # its commands also carry their LEAPFROG_RUN tag (harness/targets/leftovers.py)
        assert leftovers.is_tag(session.calls[0][1][2].pop(leftovers.NAME))
    assert session.calls == [
        ("run", (["true"], 5, {"FROM_FILE": "1", "BOTH": "call"}, "/tmp")),  # the file's env, the call's on top
        ("put", (tmp_path / "a", "/tmp/a")),
        ("get", ("/tmp/b", tmp_path / "b", 7)),
        ("forward", 8000),
    ]
    assert terminal._session(target) is session  # leapfrog repro finds the same session


def test_a_vm_that_is_not_running_refuses_every_call(tmp_path: Path) -> None:
    vm = QemuVmTarget(config(tmp_path, "qemu-vm"))
    calls = [
        lambda: vm.run(["true"], timeout=5),
        lambda: vm.put(tmp_path, "/tmp/x"),
        lambda: vm.get("/tmp/x", tmp_path / "x"),
        lambda: vm.forward(80),
        lambda: terminal._session(vm),
    ]
    for call in calls:
        with pytest.raises(TargetError, match=r'target "qemu-vm" is not running; call start\(\) first\.'):
            call()


def test_repro_refuses_a_target_without_an_ssh_session(tmp_path: Path) -> None:
    native = NativeTarget(
        TargetConfig("native", "native", tmp_path / "n.toml", "", "x86_64", sys.executable, {}, None, None)
    )
    with pytest.raises(TargetError, match="no SSH session"):
        terminal._session(native)


def test_the_vm_disk_builder_imports_no_target_module() -> None:
    """Images sit below targets: building a VM disk must not load any backend."""
    code = (
        "import sys, harness.images.vm_disk\n"
        "bad = sorted(m for m in sys.modules if m.startswith('harness.targets'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
