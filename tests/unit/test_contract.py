"""The Target contract (tests/contract_body.py) on the backends that need no emulator.

native runs on the host; ssh runs against a paramiko SSH server on 127.0.0.1
that runs each command with the host's /bin/sh (as sshd would), serves the
host's files over SFTP (reading and writing) and opens direct-tcpip tunnels to
the host's loopback, so every byte goes through the real SSH protocol.  The
same body runs on chroot, docker and qemu-vm in tests/integration/test_contract.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from harness.config import TargetConfig, load_project
from harness.targets import make_target
from harness.targets.base import Target
from harness.targets.ssh import SshTarget
from tests.contract_body import SERVE_PORT, TARGET_ENV, Contract
from tests.unit.test_ssh_unit import LoopbackSsh, _LocalSftp, _Server

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- a whole SSH server on loopback


class _WritableSftp(_LocalSftp):
    """The host's files over SFTP, written too, like OpenSSH's sftp-server."""

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        try:
            fd = os.open(path, flags | os.O_CLOEXEC, 0o644)  # the client sets the mode after (chattr)
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        mode = "rb" if flags & (os.O_WRONLY | os.O_RDWR) == 0 else ("r+b" if flags & os.O_RDWR else "wb")
        f = os.fdopen(fd, mode)
        handle = paramiko.SFTPHandle(flags)
        if "r" in mode:
            handle.readfile = f  # type: ignore[attr-defined]  # how SFTPHandle.read finds the file
        if mode != "rb":
            handle.writefile = f  # type: ignore[attr-defined]  # and SFTPHandle.write
        handle.filename = path  # type: ignore[attr-defined]
        return handle

    def _do(self, fn: Any, *args: Any) -> int:
        try:
            fn(*args)
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        return paramiko.SFTP_OK

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return self._do(os.mkdir, path, 0o755)

    def rmdir(self, path: str) -> int:
        return self._do(os.rmdir, path)

    def remove(self, path: str) -> int:
        return self._do(os.remove, path)

    def rename(self, oldpath: str, newpath: str) -> int:
        return self._do(os.rename, oldpath, newpath)

    def symlink(self, target_path: str, path: str) -> int:
        return self._do(os.symlink, target_path, path)

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        if attr.st_mode is None:
            return paramiko.SFTP_OK
        return self._do(os.chmod, path, attr.st_mode & 0o7777)

    def readlink(self, path: str) -> str | int:
        try:
            return os.readlink(path)
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)


class _TunnellingServer(_Server):
    owner: WholeSsh

    def check_channel_direct_tcpip_request(self, chanid: int, origin: tuple[str, int], destination: Any) -> int:
        self.owner.tunnels[chanid] = (str(destination[0]), int(destination[1]))
        return paramiko.OPEN_SUCCEEDED


class WholeSsh(LoopbackSsh):
    """LoopbackSsh with a writable SFTP and port forwarding: enough for the whole Target contract."""

    def __init__(self) -> None:
        self.tunnels: dict[int, tuple[str, int]] = {}
        self.sessions: list[paramiko.Channel] = []
        super().__init__()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(self.host_key)
            t.set_subsystem_handler("sftp", paramiko.SFTPServer, _WritableSftp)
            self.transports.append(t)
            t.start_server(event=threading.Event(), server=_TunnellingServer(self))
            threading.Thread(target=self._tunnels, args=(t,), daemon=True).start()

    def _tunnels(self, t: paramiko.Transport) -> None:
        """Take each direct-tcpip channel the client opens and join it to a connection on the host."""
        while True:
            chan = t.accept(timeout=0.5)
            if chan is None:
                if not t.is_active():
                    return
                continue
            dest = self.tunnels.pop(chan.get_id(), None)
            if dest is None:  # a session channel: its exec request runs the command
                self.sessions.append(chan)  # the transport holds channels weakly: keep it as accept()'s queue did
            else:
                threading.Thread(target=_pump, args=(chan, dest), daemon=True).start()


def _pump(chan: paramiko.Channel, dest: tuple[str, int]) -> None:
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException), chan, socket.create_connection(dest) as sock:
        ends: list[Any] = [sock, chan]
        while True:
            ready, _, _ = select.select(ends, [], [], 60)
            if not ready:
                return
            for end, other in ((sock, chan), (chan, sock)):
                if end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    other.sendall(data)


# --------------------------------------------------------------------------- the targets


@pytest.fixture(scope="module")
def server() -> Iterator[WholeSsh]:
    s = WholeSsh()
    yield s
    s.close()


def _ssh(server: WholeSsh, tmp: Path) -> Target:
    key = tmp / "id_ed25519"
    key.write_bytes(server.client_key_bytes)
    key.chmod(0o600)
    known = tmp / "known_hosts"
    known.write_text(server.known_hosts_line())
    options = SshTarget.Options(host="127.0.0.1", port=server.port, key_file=str(key), known_hosts=str(known))
    cfg = TargetConfig(
        name="loopback",
        kind="ssh",
        file=tmp / "loopback.toml",
        description="the host, over SSH",
        arch=os.uname().machine,
        python="python3",
        env={},
        image=None,
        options=options,
    )
    return make_target(cfg)


@pytest.fixture(scope="module", params=["native", "ssh"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    if request.param == "ssh":
        t = _ssh(request.getfixturevalue("server"), tmp_path_factory.mktemp("ssh"))
    else:
        t = make_target(load_project(ROOT).targets["native"])
    t.config = dataclasses.replace(t.config, env={**t.config.env, **TARGET_ENV})
    t.requested_ports = [SERVE_PORT]
    t.start()
    try:
        yield t
    finally:
        t.stop()


class TestContract(Contract):
    pass


# --------------------------------------------------------------------------- what the base class gives


class _Minimal(Target):
    """A backend that writes only what it must: start, run, put, get, forward, stop."""

    kind = "minimal"

    def __init__(self, inner: Target) -> None:
        super().__init__(inner.config)
        self.inner = inner

    def start(self) -> None:
        self.inner.start()

    def run(self, argv: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: str | None = None) -> Any:
        return self.inner.run(argv, timeout=timeout, env=env, cwd=cwd)

    def put(self, local: Path, remote: str) -> None:
        self.inner.put(local, remote)

    def get(self, remote: str, local: Path, *, limit: int = 0) -> None:
        self.inner.get(remote, local, limit=limit)

    def forward(self, port: int) -> tuple[str, int]:
        return self.inner.forward(port)

    def stop(self) -> None:
        self.inner.stop()


def test_the_base_gives_facts_a_listen_address_an_image_step_and_temp_folders() -> None:
    t = _Minimal(make_target(load_project(ROOT).targets["native"]))
    t.key_packages = ["pytest"]
    facts = t.facts()  # the probe's facts.py on the target's Python, then enrich_facts
    assert facts.python.startswith("3.")
    assert facts.emulation == "native"
    assert "pytest" in facts.packages
    assert t.listen_address() == ("127.0.0.1", 0)
    assert t.prepare_image() == ""  # nothing beyond the cached image
    t.packages = ["python3-numpy"]
    t.image_packages = {"debian": ["openssh-server"]}
    assert t.image_packages_for("debian") == ["openssh-server", "python3-numpy"]
    assert t.image_packages_for("openeuler") == ["python3-numpy"]


def test_every_backend_answers_the_same_methods_with_no_duck_typing() -> None:
    """The runner, the image step and the serving helpers call these on any target; none is looked up by name."""
    from harness.kinds import KINDS
    from harness.targets import backend_class

    for kind in KINDS:
        cls = backend_class(kind)
        assert not getattr(cls, "__abstractmethods__", None), f"{kind} leaves {cls.__abstractmethods__} abstract"
        for method in ("facts", "listen_address", "prepare_image", "image_packages_for", "handle", "attach"):
            assert callable(getattr(cls, method))
    docker = backend_class("docker")
    assert docker.prepare_image is not Target.prepare_image  # it imports the image into the engine
    assert docker.listen_address is not Target.listen_address  # it publishes only chosen ports


# --------------------------------------------------------------------------- one classification


IMAGE = '[image]\ndistro = "debian"\nrelease = "trixie"\narch = "riscv64"\n'


def test_a_chroot_rootfs_that_is_not_one_is_a_config_error(tmp_path: Path) -> None:
    from harness.config import load_target
    from harness.errors import ConfigError
    from harness.targets.chroot import ChrootTarget

    (tmp_path / "empty").mkdir()
    path = tmp_path / "t-chroot.toml"
    path.write_text(f'kind = "chroot"\nrootfs = "{tmp_path / "empty"}"\n' + IMAGE)
    t = ChrootTarget(load_target(path))
    with pytest.raises(ConfigError, match=r'is not a root filesystem \(no usr/\); fix the "rootfs" key') as e:
        t._rootfs()
    assert str(path) in str(e.value)
