"""The ssh backend (and the parts of qemu-vm around it) without a real machine.

Command strings run through the host's own /bin/sh; host-key policy, password
handling, exit signals, timeouts and reconnects run against a small paramiko
SSH server on 127.0.0.1 that executes commands locally and serves local files
over SFTP; SFTP copies also run against a fake SFTP client over a local folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from paramiko.common import cMSG_CHANNEL_REQUEST

from harness.config import ImageSpec, TargetConfig, load_target
from harness.errors import ConfigError, ImageError, TargetError
from harness.images.vm_disk import BootMedia, Injected, VmDisk, debugfs_script, ensure_disk, find_kernel
from harness.sshkeys import generate_ed25519
from harness.targets._proc import BoundedBuffer
from harness.targets.qemu_vm import QemuVmTarget, tail
from harness.targets.sftp import check_member_name, download, upload
from harness.targets.ssh import SshTarget
from harness.targets.ssh_command import PGID_MARKER, build_command, kill_command
from harness.targets.ssh_command import MarkerFilter as _MarkerFilter

SECRET = "correct horse battery staple"


# --------------------------------------------------------------------------- command strings


def sh(command: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=False, timeout=30, **kw)


def split_marker(stdout: bytes) -> tuple[int, bytes]:
    first, _, rest = stdout.partition(b"\n")
    assert first.startswith(PGID_MARKER)
    return int(first[len(PGID_MARKER) :]), rest


def test_command_runs_argv_verbatim_through_a_real_shell(tmp_path: Path) -> None:
    argv = ["printf", "%s|", "two words", "it's", '"q"', "$HOME", "`id`", "ünï", "*"]
    done = sh(build_command(argv), cwd=tmp_path)
    pgid, out = split_marker(done.stdout)
    assert done.returncode == 0
    assert pgid > 0
    assert out.decode() == 'two words|it\'s|"q"|$HOME|`id`|ünï|*|'


def test_command_applies_env_and_cwd(tmp_path: Path) -> None:
    folder = tmp_path / "a dir; with $pecial"
    folder.mkdir()
    env = {"LEAPFROG_X": "value with 'quotes' and spaces", "EMPTY": ""}
    done = sh(build_command(["sh", "-c", 'pwd; echo "$LEAPFROG_X"; echo "[$EMPTY]"'], env=env, cwd=str(folder)))
    _, out = split_marker(done.stdout)
    assert out.decode().splitlines() == [str(folder), env["LEAPFROG_X"], "[]"]


def test_command_keeps_exit_code_and_fails_on_missing_cwd(tmp_path: Path) -> None:
    assert sh(build_command(["sh", "-c", "exit 7"])).returncode == 7
    done = sh(build_command(["true"], cwd=str(tmp_path / "missing")))
    assert done.returncode != 0
    assert b"missing" in done.stderr


def test_command_refuses_empty_argv_and_bad_env_names() -> None:
    with pytest.raises(ValueError, match="empty"):
        build_command([])
    with pytest.raises(ConfigError, match='"A=B"'):
        build_command(["true"], env={"A=B": "x"})
    with pytest.raises(ConfigError):
        build_command(["true"], env={"1X": "x"})


def test_kill_command_ends_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {shlex.quote(str(pidfile))}; wait"
    proc = subprocess.Popen(
        ["/bin/sh", "-c", build_command(["sh", "-c", script])],
        stdout=subprocess.PIPE,
        start_new_session=True,  # what sshd does for a session
    )
    assert proc.stdout is not None
    pgid = int(proc.stdout.readline()[len(PGID_MARKER) :])
    assert pgid == proc.pid
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert sh(kill_command(pgid)).returncode == 0
    assert proc.wait(timeout=10) == -signal.SIGKILL
    proc.stdout.close()
    assert not _running(child)


def _running(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True


# --------------------------------------------------------------------------- output handling


def test_bounded_buffer_keeps_the_head_and_says_how_much_was_dropped() -> None:
    buf = BoundedBuffer(limit=10)
    for chunk in (b"0123", b"456789ab", b"cdef"):
        buf.write(chunk)
    assert bytes(buf.data) == b"0123456789"
    assert buf.dropped == 6
    text = buf.text()
    assert text.startswith("0123456789")
    assert "6 bytes dropped" in text


def test_bounded_buffer_decodes_bad_utf8_with_replacement() -> None:
    buf = BoundedBuffer()
    buf.write(b"ok " + b"\xff\xfe")
    assert buf.text() == "ok \ufffd\ufffd"


def test_marker_filter_finds_a_split_marker_after_login_noise() -> None:
    sink = BoundedBuffer()
    f = _MarkerFilter(sink)
    for chunk in (b"motd line\nleapfrog-pg", b"id:4242", b"\nhello ", b"world\n"):
        f.write(chunk)
    f.flush()
    assert f.pgid == 4242
    assert bytes(sink.data) == b"motd line\nhello world\n"


def test_marker_filter_passes_everything_through_when_no_marker_comes() -> None:
    sink = BoundedBuffer()
    f = _MarkerFilter(sink)
    f.write(b"no marker here")
    f.flush()
    assert f.pgid is None
    assert bytes(sink.data) == b"no marker here"


# --------------------------------------------------------------------------- options


def make_config(tmp_path: Path, **options: Any) -> TargetConfig:
    return TargetConfig(
        name="board",
        kind="ssh",
        file=tmp_path / "board.toml",
        description="",
        arch="riscv64",
        python="python3",
        env={},
        image=None,
        options=SshTarget.Options(**options),
    )


def test_options_load_from_a_target_file(tmp_path: Path) -> None:
    path = tmp_path / "board.toml"
    path.write_text(
        'kind = "ssh"\nhost = "visionfive2.lan"\nport = 2222\nuser = "debian"\n'
        'password_env = "BOARD_PW"\naccept_new_host_key = true\nconnect_timeout = 5\n'
    )
    cfg = load_target(path)
    assert cfg.options == SshTarget.Options(
        host="visionfive2.lan",
        port=2222,
        user="debian",
        password_env="BOARD_PW",
        accept_new_host_key=True,
        connect_timeout=5.0,
    )


def test_options_file_with_a_typo_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "board.toml"
    path.write_text('kind = "ssh"\nhost = "x"\npasword_env = "PW"\n')
    with pytest.raises(ConfigError, match='"password_env"'):
        load_target(path)


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"host": ""}, '"host"'),
        ({"host": "x", "port": 0}, '"port"'),
        ({"host": "x", "port": 70000}, '"port"'),
        ({"host": "x", "user": ""}, '"user"'),
        ({"host": "x", "connect_timeout": 0.0}, '"connect_timeout"'),
        ({"host": "x", "connect_timeout": float("nan")}, '"connect_timeout"'),
        ({"host": "x", "io_timeout": 0.0}, '"io_timeout"'),
        ({"host": "x", "io_timeout": float("nan")}, '"io_timeout"'),
        ({"host": "x", "io_timeout": float("inf")}, '"io_timeout"'),
    ],
)
def test_invalid_options_are_refused(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        SshTarget.Options(**kw)


def test_a_password_given_as_password_env_is_refused_without_repeating_it() -> None:
    with pytest.raises(ConfigError, match="NAME of an environment variable") as info:
        SshTarget.Options(host="x", password_env=SECRET)
    assert SECRET not in str(info.value)


def test_the_password_is_never_in_repr_or_str(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAPFROG_TEST_PW", SECRET)
    target = SshTarget(make_config(tmp_path, host="127.0.0.1", password_env="LEAPFROG_TEST_PW"))
    for text in (repr(target), str(target), repr(target.options), repr(target.session), str(vars(target))):
        assert SECRET not in text
        assert "LEAPFROG_TEST_PW" in text or "SshTarget" in text or "SshSession" in text


# --------------------------------------------------------------------------- path safety


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "/etc", "a\\b", "nul\0"])
def test_dangerous_member_names_are_refused(name: str) -> None:
    with pytest.raises(TargetError, match="refusing"):
        check_member_name(name, "/remote")


@pytest.mark.parametrize("name", ["file.txt", "..hidden", "...", "a b", "ünï"])
def test_ordinary_member_names_pass(name: str) -> None:
    check_member_name(name, "/remote")


class FakeSftp:
    """The SFTPClient calls ``upload``/``download`` make, over a local folder.

    ``extra`` adds entries a malicious server could list (names only).
    """

    def __init__(self, root: Path, extra: list[str] | None = None) -> None:
        self.root = root
        self.extra = extra or []

    def _p(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def stat(self, path: str) -> paramiko.SFTPAttributes:
        return paramiko.SFTPAttributes.from_stat(os.stat(self._p(path)))

    def lstat(self, path: str) -> paramiko.SFTPAttributes:
        return paramiko.SFTPAttributes.from_stat(os.lstat(self._p(path)))

    def listdir_attr(self, path: str) -> list[paramiko.SFTPAttributes]:
        p = self._p(path)
        out = [paramiko.SFTPAttributes.from_stat(os.lstat(p / n), n) for n in sorted(os.listdir(p))]
        for name in self.extra:
            out.append(paramiko.SFTPAttributes.from_stat(os.stat(self.root), name))
        return out

    def get(self, remote: str, local: str, callback: Any = None) -> None:
        data = self._p(remote).read_bytes()
        Path(local).write_bytes(data)
        if callback:
            callback(len(data), len(data))

    def put(self, local: str, remote: str) -> None:
        self._p(remote).write_bytes(Path(local).read_bytes())

    def chmod(self, remote: str, mode: int) -> None:
        os.chmod(self._p(remote), mode)

    def mkdir(self, remote: str) -> None:
        self._p(remote).mkdir()

    def symlink(self, source: str, dest: str) -> None:
        os.symlink(source, self._p(dest))

    def remove(self, remote: str) -> None:
        self._p(remote).unlink()


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "top.txt").write_text("top")
    (root / "sub" / "a.bin").write_bytes(bytes(range(256)))
    (root / "sub" / "deeper" / "run.sh").write_text("#!/bin/sh\n")
    (root / "sub" / "deeper" / "run.sh").chmod(0o755)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_upload_then_download_round_trips_a_folder(tmp_path: Path) -> None:
    src, remote_root, back = tmp_path / "src", tmp_path / "remote", tmp_path / "back"
    src.mkdir()
    remote_root.mkdir()
    make_tree(src)
    sftp: Any = FakeSftp(remote_root)
    upload(sftp, src, "/srv/suite")
    download(sftp, "/srv/suite", back)
    assert tree(back) == tree(src)
    assert os.access(back / "sub" / "deeper" / "run.sh", os.X_OK)


def test_upload_and_download_a_single_file(tmp_path: Path) -> None:
    (tmp_path / "remote").mkdir()
    f = tmp_path / "one.txt"
    f.write_text("one")
    sftp: Any = FakeSftp(tmp_path / "remote")
    upload(sftp, f, "/a/b/one.txt")
    download(sftp, "/a/b/one.txt", tmp_path / "out" / "copy.txt")
    assert (tmp_path / "out" / "copy.txt").read_text() == "one"


def test_upload_of_a_missing_path_is_a_target_error(tmp_path: Path) -> None:
    sftp: Any = FakeSftp(tmp_path)
    with pytest.raises(TargetError, match="no such file"):
        upload(sftp, tmp_path / "nope", "/x")


def test_download_skips_links_and_fifos_inside_a_folder_and_writes_nothing_outside(tmp_path: Path) -> None:
    remote, dest, outside = tmp_path / "remote", tmp_path / "dest", tmp_path / "outside"
    (remote / "results").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("host")
    (remote / "results" / "a.json").write_text("{}")
    (remote / "results" / "evil").symlink_to(outside)
    (remote / "results" / "evil-file").symlink_to(outside / "secret")
    os.mkfifo(remote / "results" / "fifo")  # FakeSftp.get would block on it: it must never be opened
    sftp: Any = FakeSftp(remote)
    download(sftp, "/results", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["a.json"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


@pytest.mark.parametrize("kind", ["FIFO", "symbolic link"])
def test_download_refuses_a_top_that_is_not_a_file_or_folder(tmp_path: Path, kind: str) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    (tmp_path / "real.jsonl").write_text("{}\n")
    if kind == "FIFO":
        os.mkfifo(remote / "results.jsonl")
    else:
        (remote / "results.jsonl").symlink_to(tmp_path / "real.jsonl")
    sftp: Any = FakeSftp(remote)
    with pytest.raises(TargetError, match=f'"/results.jsonl" from the target: it is a {kind}'):
        download(sftp, "/results.jsonl", tmp_path / "got")
    assert not (tmp_path / "got").exists()


class ShrinkingAttrsSftp(FakeSftp):
    """Lists every file as 10 bytes long: a file that grows after its size was read."""

    def listdir_attr(self, path: str) -> list[paramiko.SFTPAttributes]:
        attrs = super().listdir_attr(path)
        for a in attrs:
            a.st_size = 10
        return attrs


def test_download_counts_the_bytes_that_come_not_only_the_sizes_listed(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    (remote / "r").mkdir(parents=True)
    (remote / "r" / "grown.bin").write_bytes(b"x" * 5000)
    sftp: Any = ShrinkingAttrsSftp(remote)
    with pytest.raises(TargetError, match=r'more than 4096 bytes, the most one copy back takes \(passed at "/r/grown'):
        download(sftp, "/r", tmp_path / "back", limit=4096)
    assert not (tmp_path / "back" / "grown.bin").exists()


def test_download_refuses_traversal_names_from_a_hostile_server(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    (remote / "results").mkdir(parents=True)
    sftp: Any = FakeSftp(remote, extra=["../../escape"])
    with pytest.raises(TargetError, match="outside the destination"):
        download(sftp, "/results", tmp_path / "dest")
    assert not (tmp_path / "escape").exists()


def test_download_refuses_to_write_through_a_local_symlink(tmp_path: Path) -> None:
    remote, dest, outside = tmp_path / "remote", tmp_path / "dest", tmp_path / "outside"
    (remote / "r").mkdir(parents=True)
    (remote / "r" / "f.txt").write_text("x")
    dest.mkdir()
    outside.mkdir()
    (dest / "f.txt").symlink_to(outside / "f.txt")
    sftp: Any = FakeSftp(remote)
    with pytest.raises(TargetError, match="link or lies outside"):
        download(sftp, "/r", dest)
    assert not (outside / "f.txt").exists()


def test_download_of_a_missing_path_is_a_target_error(tmp_path: Path) -> None:
    sftp: Any = FakeSftp(tmp_path)
    with pytest.raises(TargetError, match="cannot copy"):
        download(sftp, "/nope", tmp_path / "x")


# --------------------------------------------------------------------------- a loopback SSH server


def pkey(private: bytes) -> paramiko.PKey:
    return paramiko.Ed25519Key(file_obj=io.StringIO(private.decode()))


class _Server(paramiko.ServerInterface):
    def __init__(self, owner: LoopbackSsh) -> None:
        self.owner = owner

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        self.owner.passwords_seen.append(password)
        return paramiko.AUTH_SUCCESSFUL if password == SECRET else paramiko.AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = key.get_base64() == self.owner.client_key.get_base64()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self.owner.execute, args=(channel, command.decode()), daemon=True).start()
        return True


class _LocalSftp(paramiko.SFTPServerInterface):
    """Serves the local file system read-only over SFTP, like OpenSSH's sftp-server would."""

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.stat(path))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.lstat(path))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        try:
            return [paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(path, n)), n) for n in os.listdir(path)]
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> paramiko.SFTPHandle | int:
        try:
            f = open(path, "rb")  # noqa: SIM115  # closed by the handle
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)
        handle = paramiko.SFTPHandle(flags)
        handle.readfile = f  # type: ignore[attr-defined]  # how SFTPHandle.read finds the file
        handle.filename = path  # type: ignore[attr-defined]
        return handle


class LoopbackSsh:
    """An SSH server on 127.0.0.1 that runs each exec request with the local /bin/sh, like sshd,
    and serves the local file system read-only over SFTP."""

    def __init__(self) -> None:
        host_private, _ = generate_ed25519()
        client_private, _ = generate_ed25519()
        self.host_key = pkey(host_private)
        self.client_key = pkey(client_private)
        self.client_key_bytes = client_private
        self.passwords_seen: list[str] = []
        self.transports: list[paramiko.Transport] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            t = paramiko.Transport(conn)
            t.add_server_key(self.host_key)
            t.set_subsystem_handler("sftp", paramiko.SFTPServer, _LocalSftp)
            self.transports.append(t)
            # With an event the handshake runs in the transport's own thread, so a client
            # that hangs up mid-handshake (a refused host key) never stops this loop.
            t.start_server(event=threading.Event(), server=_Server(self))

    def execute(self, chan: paramiko.Channel, command: str) -> None:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

        def pump(stream: Any, send: Any) -> None:
            for chunk in iter(lambda: stream.read1(65536), b""):
                with contextlib.suppress(OSError, EOFError):
                    send(chunk)

        pumps = [
            threading.Thread(target=pump, args=(proc.stdout, chan.sendall), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, chan.sendall_stderr), daemon=True),
        ]
        for p in pumps:
            p.start()
        rc = proc.wait()
        for p in pumps:
            p.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            if rc < 0:
                self._send_exit_signal(chan, signal.Signals(-rc).name.removeprefix("SIG"))
            else:
                chan.send_exit_status(rc)
            chan.shutdown_write()
            chan.close()

    @staticmethod
    def _send_exit_signal(chan: paramiko.Channel, name: str) -> None:
        """What OpenSSH sends when the command was killed by a signal (RFC 4254, 6.10)."""
        m = paramiko.Message()
        m.add_byte(cMSG_CHANNEL_REQUEST)
        m.add_int(chan.remote_chanid)
        m.add_string("exit-signal")
        m.add_boolean(False)
        m.add_string(name)
        m.add_boolean(False)
        m.add_string("")
        m.add_string("")
        chan.transport._send_user_message(m)  # type: ignore[attr-defined]

    def drop_connections(self) -> None:
        for t in self.transports:
            t.close()

    def close(self) -> None:
        self.listener.close()
        self.drop_connections()

    def known_hosts_line(self, key: paramiko.PKey | None = None) -> str:
        key = key or self.host_key
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackSsh]:
    s = LoopbackSsh()
    yield s
    s.close()


@pytest.fixture
def client_key(server: LoopbackSsh, tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_bytes(server.client_key_bytes)
    path.chmod(0o600)
    return path


@pytest.fixture
def known(server: LoopbackSsh, tmp_path: Path) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(server.known_hosts_line())
    return path


@pytest.fixture
def target(server: LoopbackSsh, tmp_path: Path, client_key: Path, known: Path) -> Iterator[SshTarget]:
    t = SshTarget(
        make_config(tmp_path, host="127.0.0.1", port=server.port, key_file=str(client_key), known_hosts=str(known))
    )
    t.start()
    yield t
    t.stop()


def test_run_reconnects_once_after_the_connection_dropped(server: LoopbackSsh, target: SshTarget) -> None:
    assert target.run(["true"], timeout=30).ok
    server.drop_connections()
    time.sleep(0.2)
    assert target.run(["echo", "again"], timeout=30).stdout == "again\n"


def test_a_server_that_is_gone_is_a_target_error(tmp_path: Path, client_key: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    t = SshTarget(make_config(tmp_path, host="127.0.0.1", port=port, key_file=str(client_key), connect_timeout=5))
    with pytest.raises(TargetError, match="cannot connect"):
        t.start()
    t.stop()
    t.stop()  # twice is fine


# --------------------------------------------------------------------------- a server that stops answering


class _StallingServer(_Server):
    """Logs in, then never answers what ``owner.mode`` names (until the test releases it)."""

    owner: StallingSsh

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        if self.owner.mode == "exec-request":  # holds the server's whole transport thread, like a hung sshd
            self.owner.release.wait(60)
        return True  # "exec-silent": accepted, then no output and no exit status, ever

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        if self.owner.mode == "sftp-request":
            self.owner.release.wait(60)
        return True  # "sftp-silent": accepted, then the SFTP handshake is never answered


class StallingSsh(LoopbackSsh):
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.release = threading.Event()
        super().__init__()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "banner":  # accepts the connection, never says a word
                self.transports.append(conn)  # type: ignore[arg-type]
                continue
            t = paramiko.Transport(conn)
            t.add_server_key(self.host_key)
            self.transports.append(t)
            t.start_server(event=threading.Event(), server=_StallingServer(self))

    def close(self) -> None:
        self.release.set()
        super().close()


@pytest.mark.parametrize(
    ("mode", "action", "message"),
    [
        ("exec-request", "run", r"no answer within io_timeout = 1 s while starting 'echo hi'"),
        ("exec-silent", "run", r"'echo hi' did not start within its timeout of 1\.5 s"),
        ("sftp-request", "put", r"no answer within io_timeout = 1 s while starting SFTP"),
        ("sftp-silent", "put", r"no answer within io_timeout = 1 s while copying"),
        ("sftp-silent", "get", r"no answer within io_timeout = 1 s while copying"),
        ("banner", "run", r"SSH failed: .*; check that sshd runs there"),
    ],
)
def test_a_server_that_stops_answering_is_a_target_error_within_the_deadline(
    tmp_path: Path, mode: str, action: str, message: str
) -> None:
    server = StallingSsh(mode)
    client_key = tmp_path / "id_ed25519"
    client_key.write_bytes(server.client_key_bytes)
    client_key.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line())
    t = SshTarget(
        make_config(
            tmp_path,
            host="127.0.0.1",
            port=server.port,
            key_file=str(client_key),
            known_hosts=str(known),
            connect_timeout=1.0,
            io_timeout=1.0,
        )
    )
    (tmp_path / "f").write_text("x")
    act = {
        "run": lambda: t.run(["echo", "hi"], timeout=1.5),
        "put": lambda: t.put(tmp_path / "f", "/tmp/leapfrog-stall-test/f"),
        "get": lambda: t.get("/etc/hostname", tmp_path / "got"),
    }[action]
    started = time.monotonic()
    try:
        with pytest.raises(TargetError, match=message):
            act()
        # One deadline (io_timeout, connect_timeout or the command's own timeout) and a margin; never a hang.
        assert time.monotonic() - started < 6
    finally:
        t.stop()
        server.close()


def test_io_timeout_reaches_the_vm_session_and_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "vm.toml"
    path.write_text('kind = "qemu-vm"\nio_timeout = 300\n[image]\ndistro = "debian"\n')
    assert load_target(path).options.io_timeout == 300.0
    path = tmp_path / "board.toml"
    path.write_text('kind = "ssh"\nhost = "b"\nio_timeout = 45\n')
    assert load_target(path).options.io_timeout == 45.0


def test_unknown_host_key_is_refused_by_default(server: LoopbackSsh, tmp_path: Path, client_key: Path) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    t = SshTarget(
        make_config(tmp_path, host="127.0.0.1", port=server.port, key_file=str(client_key), known_hosts=str(empty))
    )
    with pytest.raises(TargetError, match="host key is unknown"):
        t.start()
    assert empty.read_text() == ""


def test_unknown_host_key_is_saved_when_accept_new_host_key(
    server: LoopbackSsh, tmp_path: Path, client_key: Path
) -> None:
    known = tmp_path / "new" / "known_hosts"
    cfg = make_config(
        tmp_path,
        host="127.0.0.1",
        port=server.port,
        key_file=str(client_key),
        known_hosts=str(known),
        accept_new_host_key=True,
    )
    with SshTarget(cfg) as t:
        assert t.run(["true"], timeout=30).ok
    assert known.read_text() == server.known_hosts_line()
    assert stat.S_IMODE(known.stat().st_mode) == 0o600


def test_changed_host_key_is_refused_even_with_accept_new_host_key(
    server: LoopbackSsh, tmp_path: Path, client_key: Path
) -> None:
    other, _ = generate_ed25519()
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line(pkey(other)))
    cfg = make_config(
        tmp_path,
        host="127.0.0.1",
        port=server.port,
        key_file=str(client_key),
        known_hosts=str(known),
        accept_new_host_key=True,
    )
    t = SshTarget(cfg)
    with pytest.raises(TargetError, match="CHANGED"):
        t.start()
    assert known.read_text() == server.known_hosts_line(pkey(other))


def test_password_login_reads_the_env_var_and_never_shows_the_password(
    server: LoopbackSsh, tmp_path: Path, known: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = {"host": "127.0.0.1", "port": server.port, "known_hosts": str(known), "password_env": "LEAPFROG_TEST_PW"}
    monkeypatch.setenv("LEAPFROG_TEST_PW", SECRET)
    with SshTarget(make_config(tmp_path, **base)) as t:
        assert t.run(["echo", "in"], timeout=30).stdout == "in\n"
    assert SECRET in server.passwords_seen

    monkeypatch.setenv("LEAPFROG_TEST_PW", "wrong " + SECRET)
    t = SshTarget(make_config(tmp_path, **base))
    with pytest.raises(TargetError, match="login refused") as info:
        t.start()
    assert SECRET not in str(info.value)
    assert "$LEAPFROG_TEST_PW" in str(info.value)

    monkeypatch.delenv("LEAPFROG_TEST_PW")
    with pytest.raises(TargetError, match=r'"LEAPFROG_TEST_PW".*not set'):
        SshTarget(make_config(tmp_path, **base)).start()


def test_missing_key_file_is_a_target_error_naming_it(server: LoopbackSsh, tmp_path: Path, known: Path) -> None:
    t = SshTarget(
        make_config(tmp_path, host="127.0.0.1", port=server.port, key_file="/nonexistent/key", known_hosts=str(known))
    )
    with pytest.raises(TargetError, match="/nonexistent/key"):
        t.start()


# --------------------------------------------------------------------------- qemu-vm: the parts that need no emulator
# (qemu-vm drives its guest through SshSession; what it adds on top is tested here.)


def vm_config(tmp_path: Path, **options: Any) -> TargetConfig:
    return TargetConfig(
        name="vm",
        kind="qemu-vm",
        file=tmp_path / "vm.toml",
        description="",
        arch="riscv64",
        python="python3",
        env={},
        image=ImageSpec(),
        options=QemuVmTarget.Options(**options),
    )


def test_vm_options_load_from_a_target_file(tmp_path: Path) -> None:
    path = tmp_path / "vm.toml"
    path.write_text(
        'kind = "qemu-vm"\ncpus = 4\nmemory = "3G"\ncpu = "rv64,v=true,vlen=256"\n'
        'extra_args = ["-d", "guest_errors"]\n[image]\ndistro = "debian"\n'
    )
    cfg = load_target(path)
    assert cfg.options == QemuVmTarget.Options(
        cpus=4, memory="3G", cpu="rv64,v=true,vlen=256", extra_args=["-d", "guest_errors"]
    )


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        ({"cpus": 0}, '"cpus"'),
        ({"memory": "lots"}, '"memory"'),
        ({"boot_timeout": -1.0}, '"boot_timeout"'),
        ({"boot_timeout": float("nan")}, '"boot_timeout"'),
        ({"io_timeout": 0.0}, '"io_timeout"'),
    ],
)
def test_invalid_vm_options_are_refused(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        QemuVmTarget.Options(**kw)


def test_vm_qemu_command_line_for_a_built_disk(tmp_path: Path) -> None:
    media = BootMedia.built(VmDisk(tmp_path / "vm"))
    plain = QemuVmTarget(vm_config(tmp_path)).qemu_argv(media, tmp_path / "o.qcow2", 2222)
    assert plain[0] == "qemu-system-riscv64"
    assert "-cpu" not in plain
    assert plain[plain.index("-bios") + 1] == "default"
    assert plain[plain.index("-netdev") + 1] == "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22"
    assert plain[plain.index("-kernel") + 1] == str(tmp_path / "vm" / "kernel")
    assert plain[plain.index("-initrd") + 1] == str(tmp_path / "vm" / "initrd.img")
    assert f"file={tmp_path / 'o.qcow2'},format=qcow2" in plain[plain.index("-drive") + 1]
    assert "root=LABEL=root" in plain[plain.index("-append") + 1]
    assert "if=pflash" not in " ".join(plain)
    custom = QemuVmTarget(
        vm_config(tmp_path, cpu="rv64,v=true", cpus=4, memory="4G", extra_args=["-d", "guest_errors"])
    ).qemu_argv(media, tmp_path / "o.qcow2", 2222)
    assert custom[custom.index("-cpu") + 1] == "rv64,v=true"
    assert custom[custom.index("-smp") + 1] == "4"
    assert custom[custom.index("-m") + 1] == "4G"
    assert custom[-2:] == ["-d", "guest_errors"]


def supplied_config(tmp_path: Path, firmware: list[str], **options: Any) -> TargetConfig:
    disk = tmp_path / "openEuler-24.03-LTS-SP1-riscv64.qcow2"
    disk.write_bytes(b"QFI\xfb")
    for name in firmware:
        (tmp_path / name).write_bytes(b"fd")
    image = ImageSpec(
        distro="openeuler", release="24.03-LTS-SP1", source="qcow2", path=str(disk),
        firmware=[str(tmp_path / f) for f in firmware],
    )  # fmt: skip
    return dataclasses.replace(vm_config(tmp_path, **options), image=image)


def test_vm_supplied_qcow2_boots_uefi_from_pflash_and_logs_in_with_a_password(tmp_path: Path) -> None:
    cfg = supplied_config(
        tmp_path, ["RISCV_VIRT_CODE.fd", "RISCV_VIRT_VARS.fd"], user="openeuler", password_env="OE_PW"
    )
    t = QemuVmTarget(cfg)
    media, login = t._media()
    assert media.disk_format == "qcow2"
    assert media.disk == tmp_path / "openEuler-24.03-LTS-SP1-riscv64.qcow2"
    assert (media.flash_code, media.flash_vars) == (tmp_path / "RISCV_VIRT_CODE.fd", tmp_path / "RISCV_VIRT_VARS.fd")
    assert (login.user, login.password_env, login.key_file, login.accept_new_host_key) == (
        "openeuler",
        "OE_PW",
        "",
        True,
    )
    argv = t.qemu_argv(media, tmp_path / "o.qcow2", 2222, tmp_path / "vars-copy.fd")
    joined = " ".join(argv)
    assert f"if=pflash,unit=0,format=raw,readonly=on,file={tmp_path / 'RISCV_VIRT_CODE.fd'}" in joined
    assert f"if=pflash,unit=1,format=raw,file={tmp_path / 'vars-copy.fd'}" in joined
    assert "-kernel" not in argv
    assert t.disk is None


def test_vm_supplied_qcow2_with_one_firmware_file_uses_it_as_bios(tmp_path: Path) -> None:
    t = QemuVmTarget(supplied_config(tmp_path, ["fw_payload_oe_uboot_2304.bin"], password_env="OE_PW"))
    media, _ = t._media()
    argv = t.qemu_argv(media, tmp_path / "o.qcow2", 2222)
    assert argv[argv.index("-bios") + 1] == str(tmp_path / "fw_payload_oe_uboot_2304.bin")
    assert "if=pflash" not in " ".join(argv)


@pytest.mark.parametrize(
    ("firmware", "options", "message"),
    [
        ([], {}, "password_env"),
        (["a.fd", "b.fd", "c.fd"], {"password_env": "OE_PW"}, "lists 3 files"),
    ],
)
def test_vm_supplied_qcow2_config_errors(
    tmp_path: Path, firmware: list[str], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        QemuVmTarget(supplied_config(tmp_path, firmware, **options))._media()


def test_vm_supplied_qcow2_that_is_missing_is_a_config_error(tmp_path: Path) -> None:
    cfg = supplied_config(tmp_path, [], password_env="OE_PW")
    assert cfg.image is not None
    cfg = dataclasses.replace(cfg, image=dataclasses.replace(cfg.image, path=str(tmp_path / "gone.qcow2")))
    with pytest.raises(ConfigError, match="does not exist"):
        QemuVmTarget(cfg)._media()


def test_vm_packages_are_the_backend_needs_plus_the_suites(tmp_path: Path) -> None:
    t = QemuVmTarget(vm_config(tmp_path), packages=["python3-numpy"])
    wanted = t.image_packages_for("debian")
    assert "python3-numpy" in wanted
    assert {"linux-image-riscv64", "openssh-server", "systemd-sysv", "udev"} <= set(wanted)


def test_vm_that_was_never_started_fails_clearly_and_stops_quietly(tmp_path: Path) -> None:
    t = QemuVmTarget(vm_config(tmp_path))
    with pytest.raises(TargetError, match="not running"):
        t.run(["true"], timeout=5)
    t.stop()
    t.stop()


def test_vm_refuses_images_it_cannot_boot(tmp_path: Path) -> None:
    cfg = dataclasses.replace(vm_config(tmp_path), image=ImageSpec(distro="openeuler", source="docker"))
    with pytest.raises(ConfigError, match='source "docker" is not supported'):
        QemuVmTarget(cfg)._media()


def test_vm_password_env_follows_the_ssh_rules() -> None:
    with pytest.raises(ConfigError, match="NAME of an environment variable") as info:
        QemuVmTarget.Options(password_env=SECRET)
    assert SECRET not in str(info.value)


def test_debugfs_script_writes_files_links_and_modes() -> None:
    files = [
        Injected("/root/.ssh", "dir", 0o700),
        Injected("/root/.ssh/authorized_keys", "file", 0o600, b"key"),
        Injected("/etc/systemd/system/x.timer", "symlink", target="/dev/null"),
    ]
    script = debugfs_script(files, {"/root/.ssh/authorized_keys": Path("/stage/1")})
    assert script.splitlines() == [
        "mkdir /root/.ssh",
        "sif /root/.ssh mode 040700",
        "sif /root/.ssh uid 0",
        "sif /root/.ssh gid 0",
        "rm /root/.ssh/authorized_keys",
        "cd /root/.ssh",
        "write /stage/1 authorized_keys",
        "sif /root/.ssh/authorized_keys mode 0100600",
        "sif /root/.ssh/authorized_keys uid 0",
        "sif /root/.ssh/authorized_keys gid 0",
        "rm /etc/systemd/system/x.timer",
        "symlink /etc/systemd/system/x.timer /dev/null",
    ]
    with pytest.raises(ValueError, match="cannot quote"):
        debugfs_script([Injected("/a b", "dir")], {})


def fake_rootfs(root: Path, kernels: tuple[str, ...] = ("6.12.1-riscv64",)) -> Path:
    for d in ("boot", "usr/bin", "etc/ssh", "etc/systemd/system", "root", "var"):
        (root / d).mkdir(parents=True)
    for version in kernels:
        (root / "boot" / f"vmlinux-{version}").write_bytes(b"kernel " + version.encode())
        (root / "boot" / f"initrd.img-{version}").write_bytes(b"initrd " + version.encode())
    (root / "etc" / "fstab").write_text("# original\n")
    (root / "usr" / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(5000))
    return root


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


def test_find_kernel_takes_the_newest_with_an_initrd(tmp_path: Path) -> None:
    root = fake_rootfs(tmp_path / "rootfs", ("6.9.2-riscv64", "6.12.1-riscv64"))
    (root / "boot" / "vmlinux-7.0.0-riscv64").write_bytes(b"no initrd for this one")
    kernel, initrd = find_kernel(root)
    assert kernel.name == "vmlinux-6.12.1-riscv64"
    assert initrd.name == "initrd.img-6.12.1-riscv64"
    with pytest.raises(ImageError, match="no kernel"):
        find_kernel(fake_rootfs(tmp_path / "empty", ()))


needs_e2fsprogs = pytest.mark.skipif(
    not all(shutil.which(t) or Path("/usr/sbin", t).exists() for t in ("mke2fs", "debugfs")),
    reason="e2fsprogs (mke2fs, debugfs) is not installed",
)


def debugfs_cat(image: Path, path: str) -> bytes:
    debugfs = shutil.which("debugfs") or "/usr/sbin/debugfs"
    return subprocess.run([debugfs, "-R", f"cat {path}", str(image)], capture_output=True, check=True).stdout


@needs_e2fsprogs
def test_disk_is_built_once_beside_the_rootfs_which_stays_untouched(tmp_path: Path) -> None:
    rootfs = fake_rootfs(tmp_path / "image" / "rootfs")
    before = snapshot(rootfs)
    disk = ensure_disk(rootfs)
    assert disk.folder == tmp_path / "image" / "vm"
    assert snapshot(rootfs) == before
    assert disk.kernel.read_bytes() == b"kernel 6.12.1-riscv64"
    assert disk.initrd.read_bytes() == b"initrd 6.12.1-riscv64"
    assert stat.S_IMODE(disk.client_key.stat().st_mode) == 0o600
    client_pub = disk.client_key.with_suffix(".pub").read_text()
    assert debugfs_cat(disk.disk, "/root/.ssh/authorized_keys").decode() == client_pub
    assert debugfs_cat(disk.disk, "/etc/ssh/ssh_host_ed25519_key.pub").decode() == disk.host_key_pub.read_text()
    assert debugfs_cat(disk.disk, "/usr/bin/tool") == (rootfs / "usr/bin/tool").read_bytes()
    assert b"LABEL=root" in debugfs_cat(disk.disk, "/etc/fstab")
    assert b"DHCP=yes" in debugfs_cat(disk.disk, "/etc/systemd/network/80-leapfrog.network")
    kind, b64 = disk.host_key_pub.read_text().split()[:2]
    assert disk.known_hosts_line("127.0.0.1", 2222) == f"[127.0.0.1]:2222 {kind} {b64}\n"
    built = disk.meta.stat().st_mtime_ns
    assert ensure_disk(rootfs).meta.stat().st_mtime_ns == built  # cached: not built again
    assert not list((tmp_path / "image").glob("vm.build-*"))


def test_disk_build_without_a_kernel_leaves_nothing_behind(tmp_path: Path) -> None:
    rootfs = fake_rootfs(tmp_path / "image" / "rootfs", ())
    with pytest.raises(ImageError, match="linux-image-riscv64"):
        ensure_disk(rootfs)
    assert sorted(p.name for p in (tmp_path / "image").iterdir()) == ["rootfs", "vm.lock"]


def test_tail_reads_the_end_of_a_log(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(100)) + b"\xff end")
    assert tail(log, 2) == "line 99\n\ufffd end"
    assert tail(tmp_path / "missing.log") == ""
    assert tail(None) == ""


def test_run_interrupted_by_a_dead_machine_kills_the_command(target: SshTarget, tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    started = time.monotonic()

    def machine_died() -> None:
        if time.monotonic() - started > 1.5:
            raise TargetError("the machine died")

    target.session.check_alive = machine_died
    with pytest.raises(TargetError, match="machine died"):
        target.run(["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout=60)
    assert not _running(int(pidfile.read_text()))


def test_a_server_without_sftp_gives_a_target_error(target: SshTarget, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(TargetError, match=r'failed copying ".*f\.txt"'):
        target.put(tmp_path / "f.txt", "/tmp/f.txt")
    assert target.run(["true"], timeout=30).ok  # the connection itself is still fine


def test_a_host_driven_suite_attaches_its_own_connection(server: LoopbackSsh, tmp_path: Path, client_key: Path) -> None:
    """handle() saves a first-seen host key before another process checks it; stopping the view spares the owner."""
    known = tmp_path / "fresh" / "known_hosts"
    cfg = make_config(
        tmp_path,
        host="127.0.0.1",
        port=server.port,
        key_file=str(client_key),
        known_hosts=str(known),
        accept_new_host_key=True,
    )
    owner = SshTarget(cfg)
    handle = json.loads(json.dumps(owner.handle()))  # as the runner passes it: through the environment
    assert known.read_text() == server.known_hosts_line()
    try:
        strict = dataclasses.replace(cfg, options=dataclasses.replace(cfg.options, accept_new_host_key=False))
        view = SshTarget.attach(strict, handle)
        assert view.run(["echo", "attached"], timeout=30).stdout == "attached\n"
        view.stop()
        assert owner.run(["echo", "owner"], timeout=30).stdout == "owner\n"
    finally:
        owner.stop()
