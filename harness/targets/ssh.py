"""A machine reached over SSH: a real RISC-V board, or any host with sshd.

Target file keys (besides the common ones)::

    kind = "ssh"
    host = "board.lan"             # required
    port = 22
    user = "root"
    key_file = "~/.ssh/id_ed25519" # default: ssh-agent and ~/.ssh/id_*
    password_env = "BOARD_PW"      # NAME of an environment variable holding the password
    known_hosts = ""               # default: ~/.ssh/known_hosts
    accept_new_host_key = false    # true: trust and save a key seen for the first time
    connect_timeout = 30.0         # TCP connect, SSH banner, login, opening a channel
    io_timeout = 120.0             # an answer to one request: exec, an SFTP read or write

Every wait has a deadline: connecting and logging in ``connect_timeout``; the
server's answer to an exec request, and each SFTP request, ``io_timeout`` (the
default fits a VM under TCG, where one request can take a minute); a command
its own ``timeout`` plus a short grace for the kill.  A machine that stops
answering is a :class:`TargetError` within those deadlines, never a hang.

Host keys are checked against ``known_hosts``; an unknown host is refused
unless ``accept_new_host_key`` is true, and a host whose key *changed* is
always refused.  Commands run as ``cd CWD && exec env K=V ARGV`` (the server's
``AcceptEnv`` is not relied on); on timeout the command's whole process group
is killed over a second channel.  Files move over SFTP.

:class:`SshSession` is the connection itself; :class:`SshTarget` and the
``qemu-vm`` backend both delegate to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shlex
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko.common import MSG_CHANNEL_REQUEST

from harness.errors import ConfigError, TargetError
from harness.kinds import SshOptions
from harness.model import TargetFacts
from harness.targets._common import GET_LIMIT, CopyBudget, kind_of, probe_facts, refused
from harness.targets._proc import BoundedBuffer
from harness.targets.base import Completed, Target

if TYPE_CHECKING:
    from harness.config import TargetConfig

log = logging.getLogger(__name__)
#: paramiko's own messages while probing a machine that is still booting: expected failures, kept quiet.
_QUIET = "harness.targets.ssh.probing"
logging.getLogger(_QUIET).propagate = False
logging.getLogger(_QUIET).addHandler(logging.NullHandler())

#: First line the remote shell prints: the process group to kill on timeout.
PGID_MARKER = b"leapfrog-pgid:"
#: How much stdout may precede the marker (login-shell noise) before we give up on it.
_MARKER_SEARCH_LIMIT = 64 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CHUNK = 64 * 1024
#: Seconds to wait for a killed command's channel to close before giving up on it.
_KILL_GRACE = 10.0
#: After the exit status, how long to wait for EOF while no more output arrives.
_EOF_GRACE = 1.0


# --------------------------------------------------------------------------- command building


def build_command(argv: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """The one shell string sent over SSH for ``argv``.

    It prints the shell's PID (the process group sshd gave the session) as a
    marker line, changes to ``cwd``, and ``exec``s ``argv`` under ``env``, so
    the command keeps that process group and a timeout can kill all of it.
    """
    if not argv:
        raise ValueError("argv must name a program to run; it is empty.")
    steps = [f"printf '{PGID_MARKER.decode()}%s\\n' \"$$\""]
    if cwd:
        steps.append(f"cd -- {shlex.quote(cwd)}")
    assignments = []
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key):
            raise ConfigError(f'environment variable name "{key}" is not valid; use letters, digits and "_" only.')
        assignments.append(shlex.quote(f"{key}={value}"))
    runner = ["env", "--", *assignments] if assignments else []
    steps.append("exec " + " ".join([*runner, shlex.join(argv)]))
    return " && ".join(steps)


def kill_command(pgid: int) -> str:
    """Kill the process group ``pgid`` (and its leader, should the group be gone)."""
    return f"kill -s KILL -- -{pgid} 2>/dev/null; kill -s KILL -- {pgid} 2>/dev/null; true"


class _MarkerFilter:
    """Takes the PGID marker line out of the start of stdout."""

    def __init__(self, sink: BoundedBuffer) -> None:
        self.sink = sink
        self.pending = bytearray()
        self.pgid: int | None = None
        self.searching = True

    def write(self, chunk: bytes) -> None:
        if not self.searching:
            self.sink.write(chunk)
            return
        self.pending += chunk
        start = self.pending.find(PGID_MARKER)
        if start >= 0:
            end = self.pending.find(b"\n", start)
            if end < 0:
                return
            value = self.pending[start + len(PGID_MARKER) : end].strip()
            if value.isdigit():
                self.pgid = int(value)
            rest = self.pending[:start] + self.pending[end + 1 :]
            self.searching = False
            self.pending = bytearray()
            self.sink.write(bytes(rest))
        elif len(self.pending) > _MARKER_SEARCH_LIMIT:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.sink.write(bytes(self.pending))
            self.pending = bytearray()
        self.searching = False


# --------------------------------------------------------------------------- path safety


def check_member_name(name: str, where: str) -> None:
    """Refuse a directory entry name that could step outside the destination."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise TargetError(
            f'refusing to copy "{where}/{name}" from the target: the entry name could point '
            "outside the destination folder; rename it in the target."
        )


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def _local_dest(root: Path, path: Path, remote: str) -> Path:
    if path.is_symlink() or not _inside(root, path):
        raise TargetError(
            f'refusing to copy "{remote}" to "{path}": that local path is a link or lies outside '
            f'"{root}"; remove it and try again.'
        )
    return path


def download(sftp: paramiko.SFTPClient, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
    """Copy ``remote`` (file or folder) to ``local`` by the one rule of ``Target.get``.

    ``remote`` must be a regular file or a folder (checked with ``lstat``: a
    link there is not followed); a link, device, FIFO or socket inside a folder
    is skipped, never opened.  Each file's size is checked before it is copied
    and the bytes are counted while it is, so at most ``limit`` bytes come over
    in all.  Entry names with ``/`` or ``..`` and local links are refused.
    """
    budget = CopyBudget(remote, limit)
    try:
        top = sftp.lstat(remote)
    except OSError as e:
        raise TargetError(f'cannot copy "{remote}" from the target: {e.strerror or e}.') from e
    mode = top.st_mode or 0
    if stat.S_ISDIR(mode):
        local.mkdir(parents=True, exist_ok=True)
        root = local.resolve()
        _download_dir(sftp, remote, local, root, budget, 1)
    elif stat.S_ISREG(mode):
        local.parent.mkdir(parents=True, exist_ok=True)
        root = local.parent.resolve()
        _download_file(sftp, remote, _local_dest(root, local, remote), top, budget)
    else:
        raise refused(remote, kind_of(mode))


def _download_file(
    sftp: paramiko.SFTPClient, src: str, dest: Path, attr: paramiko.SFTPAttributes, budget: CopyBudget
) -> None:
    """Copy one regular file, refusing it before a byte moves when its size is already past the cap."""
    start = budget.used
    budget.take(attr.st_size or 0, src)

    def count(done: int, _size: int) -> None:  # called after each block: a file that grows is stopped too
        if start + done > budget.used:
            budget.take(start + done - budget.used, src)

    try:
        sftp.get(src, str(dest), callback=count)
    except BaseException:
        dest.unlink(missing_ok=True)  # never leave a cut-off copy that looks whole
        raise


def _download_dir(
    sftp: paramiko.SFTPClient, remote: str, local: Path, root: Path, budget: CopyBudget, depth: int
) -> None:
    for attr in sftp.listdir_attr(remote):
        name = attr.filename
        check_member_name(name, remote)
        src = str(PurePosixPath(remote) / name)
        dest = _local_dest(root, local / name, src)
        mode = attr.st_mode or 0
        if stat.S_ISDIR(mode):
            budget.entry(src, depth)
            dest.mkdir(exist_ok=True)
            _download_dir(sftp, src, dest, root, budget, depth + 1)
        elif stat.S_ISREG(mode):
            budget.entry(src, depth)
            _download_file(sftp, src, dest, attr, budget)
            os.chmod(dest, (stat.S_IMODE(mode) & 0o755) | 0o600)
        # links, devices, sockets and FIFOs: skipped, never followed or opened


def upload(sftp: paramiko.SFTPClient, local: Path, remote: str) -> None:
    """Copy ``local`` (file or folder) to ``remote``, creating parent folders."""
    if local.is_dir():
        _makedirs(sftp, remote)
        for dirpath, dirnames, filenames in os.walk(local):
            rel = Path(dirpath).relative_to(local)
            rdir = str(PurePosixPath(remote, *rel.parts))
            for name in [*dirnames, *filenames]:
                src = Path(dirpath) / name
                dst = f"{rdir}/{name}"
                if src.is_symlink():
                    with contextlib.suppress(OSError):
                        sftp.remove(dst)
                    sftp.symlink(os.readlink(src), dst)
                    if name in dirnames:
                        dirnames.remove(name)  # os.walk would not descend anyway
                elif src.is_dir():
                    _makedirs(sftp, dst)
                else:
                    _put_file(sftp, src, dst)
    elif local.is_file():
        parent = str(PurePosixPath(remote).parent)
        _makedirs(sftp, parent)
        _put_file(sftp, local, remote)
    else:
        raise TargetError(f'cannot copy "{local}" to the target: no such file or folder on the host.')


def _put_file(sftp: paramiko.SFTPClient, src: Path, dst: str) -> None:
    sftp.put(str(src), dst)
    sftp.chmod(dst, stat.S_IMODE(src.stat().st_mode))


def _makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    current = PurePosixPath("/") if path.startswith("/") else PurePosixPath()
    for part in PurePosixPath(path).parts:
        if part == "/":
            continue
        current = current / part
        try:
            attr = sftp.stat(str(current))
        except FileNotFoundError:
            sftp.mkdir(str(current))
            continue
        if not stat.S_ISDIR(attr.st_mode or 0):
            raise TargetError(f'cannot create folder "{current}" in the target: a file of that name exists.')


# --------------------------------------------------------------------------- paramiko glue


class _SftpChannel:
    """The SFTP channel as ``SFTPClient`` sees it: a read or write stalled past the
    channel's timeout closes the channel, so the client's clean-up requests fail
    at once instead of each waiting out the timeout again."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self.chan = chan
        self.stalled = False

    def recv(self, n: int) -> bytes:
        try:
            data: bytes = self.chan.recv(n)
        except TimeoutError:
            self._stall()
            raise
        return data

    def send(self, data: bytes) -> int:
        try:
            sent: int = self.chan.send(data)
        except TimeoutError:
            self._stall()
            raise
        return sent

    def _stall(self) -> None:
        self.stalled = True
        with contextlib.suppress(Exception):
            self.chan.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.chan, name)


def generate_ed25519(comment: str = "leapfrog") -> tuple[bytes, str]:
    """A new ed25519 key pair: (OpenSSH private key, "ssh-ed25519 AAAA... comment\\n")."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode('ascii')} {comment}\n"


def _channel_request(chan: paramiko.Channel, m: paramiko.Message) -> None:
    """Note an "exit-signal" request, then let paramiko handle the request as usual."""
    position = m.packet.tell()
    if m.get_text() == "exit-signal":
        m.get_boolean()  # want_reply
        name = m.get_text()
        transport = chan.get_transport()
        if isinstance(transport, _Transport):
            transport.exit_signals[chan.get_id()] = name
    m.packet.seek(position)
    paramiko.Channel._handle_request(chan, m)  # type: ignore[attr-defined]


class _Transport(paramiko.Transport):
    """A Transport that keeps the signal that ended a remote command.

    paramiko drops the SSH "exit-signal" request, so a command killed by
    SIGSEGV or SIGILL would look like "no exit status"; this keeps its name.
    """

    _channel_handler_table: ClassVar[dict[int, Any]] = {
        **getattr(paramiko.Transport, "_channel_handler_table"),  # noqa: B009 - private in the stubs
        MSG_CHANNEL_REQUEST: _channel_request,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_signals: dict[int, str] = {}


def _signal_number(name: str) -> int | None:
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return None


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _UnknownHostKey(paramiko.SSHException):
    """The server's host key is not in known_hosts (and may not be trusted on first use)."""


class _RejectPolicy(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.close()
        raise _UnknownHostKey(f"{hostname} offered unknown host key {key.get_name()} {key.fingerprint}")


class _AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Trust a host seen for the first time and append its key to ``known_hosts``.

    Only for *unknown* hosts: paramiko raises BadHostKeyException for a changed
    key before any policy is asked.
    """

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.known_hosts, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        log.info("added the host key of %s (%s) to %s", hostname, key.fingerprint, self.known_hosts)


# --------------------------------------------------------------------------- the session


class SshSession:
    """One SSH connection and the operations targets need from it.

    ``check_alive`` is called while waiting and when the connection drops; it
    raises :class:`TargetError` when the machine behind the connection is gone
    (the ``qemu-vm`` backend checks its QEMU process), so the error names the
    real cause instead of "connection lost".
    """

    def __init__(
        self,
        options: SshOptions,
        *,
        target_name: str,
        check_alive: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.options = options
        self.target_name = target_name
        self.check_alive = check_alive or (lambda: None)
        #: Called when the connection dropped, before the error is raised: the machine may be dying.
        self.on_lost = on_lost or self.check_alive
        self._client: paramiko.SSHClient | None = None
        self._sftp_client: paramiko.SFTPClient | None = None
        self._sftp_channel: _SftpChannel | None = None
        self._forwarders: dict[int, _Forwarder] = {}
        self._lock = threading.Lock()  # forwarders
        self._connect_lock = threading.RLock()  # run() and forwarder threads may reconnect at once

    def __repr__(self) -> str:
        o = self.options
        return f"<SshSession {o.user}@{o.host}:{o.port} target={self.target_name!r}>"

    @property
    def where(self) -> str:
        o = self.options
        return f'target "{self.target_name}" ({o.user}@{o.host}:{o.port})'

    # ----------------------------------------------------------------- connecting

    @property
    def known_hosts(self) -> Path:
        return Path(self.options.known_hosts or "~/.ssh/known_hosts").expanduser()

    def connect_once(self, *, quiet: bool = False) -> None:
        """Open the connection; raise paramiko's or the socket's own exception on failure.

        ``quiet`` silences paramiko's tracebacks, for polling a machine that is still booting.
        """
        o = self.options
        client = paramiko.SSHClient()
        if quiet:
            client.set_log_channel(_QUIET)
        known = self.known_hosts
        if known.is_file():
            client.load_host_keys(str(known))
        if o.accept_new_host_key:
            client.set_missing_host_key_policy(_AcceptNewPolicy(known))
        else:
            client.set_missing_host_key_policy(_RejectPolicy())
        password: str | None = None
        if o.password_env:
            password = os.environ.get(o.password_env)
            if password is None:
                raise TargetError(
                    f'{self.where}: password_env names "{o.password_env}", but that environment '
                    "variable is not set; export it before running leapfrog."
                )
        key_file: str | None = None
        if o.key_file:
            key_file = str(Path(o.key_file).expanduser())
            if not Path(key_file).is_file():
                raise TargetError(
                    f'{self.where}: key_file "{o.key_file}" does not exist; fix the path in the target file.'
                )
        defaults = not (key_file or password)
        try:
            client.connect(
                o.host,
                port=o.port,
                username=o.user,
                key_filename=key_file,
                password=password,
                allow_agent=defaults,
                look_for_keys=defaults,
                timeout=o.connect_timeout,
                banner_timeout=o.connect_timeout,
                auth_timeout=o.connect_timeout,
                channel_timeout=o.connect_timeout,
                transport_factory=_Transport,
            )
        except BaseException:
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        self._client = client
        self._sftp_client = None

    def connect(self) -> None:
        """Connect if not connected; every failure becomes a :class:`TargetError`."""
        with self._connect_lock:
            if not self.connected:
                self.close_connection()
                self._connect()

    def _connect(self) -> None:
        o = self.options
        try:
            self.connect_once()
        except paramiko.BadHostKeyException as e:
            raise TargetError(
                f"{self.where}: the host key CHANGED (now {e.key.get_name()} "
                f"{e.key.fingerprint}, expected {e.expected_key.fingerprint} from {self.known_hosts}). "
                "This may be an attack; if the machine was reinstalled, remove its old line "
                f'with: ssh-keygen -R "{_known_hosts_name(o.host, o.port)}" -f {self.known_hosts}'
            ) from e
        except paramiko.AuthenticationException as e:
            how = (
                f'the password from "${o.password_env}"'
                if o.password_env
                else f'key "{o.key_file}"'
                if o.key_file
                else "ssh-agent and ~/.ssh keys"
            )
            raise TargetError(f"{self.where}: login refused with {how}; check user, key_file and password_env.") from e
        except _UnknownHostKey as e:
            raise TargetError(
                f"{self.where}: the host key is unknown (not in {self.known_hosts}). Check its "
                f"fingerprint and add it (ssh-keyscan -p {o.port} {o.host} >> {self.known_hosts}), "
                "or set accept_new_host_key = true to trust it on first use."
            ) from e
        except paramiko.SSHException as e:
            self.check_alive()
            raise TargetError(f"{self.where}: SSH failed: {e}; check that sshd runs there.") from e
        except (OSError, EOFError) as e:
            self.check_alive()
            raise TargetError(f"{self.where}: cannot connect: {e}; check host, port and that the machine is up.") from e

    @property
    def connected(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _transport(self) -> _Transport:
        with self._connect_lock:
            self.connect()
            assert self._client is not None
            transport = self._client.get_transport()
            assert isinstance(transport, _Transport)
            return transport

    def close_connection(self) -> None:
        with self._connect_lock:
            self._close_connection()

    def _close_connection(self) -> None:
        self._drop_sftp()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    def close(self) -> None:
        """Close forwarders and the connection.  Safe to call twice."""
        for fwd in list(self._forwarders.values()):
            fwd.close()
        self._forwarders.clear()
        self.close_connection()

    def _drop_sftp(self) -> None:
        if self._sftp_client is not None:
            with contextlib.suppress(Exception):
                self._sftp_client.close()
        self._sftp_client = None
        self._sftp_channel = None

    def _stalled(self, what: str) -> TargetError:
        self.check_alive()
        return TargetError(
            f"{self.where}: no answer within io_timeout = {self.options.io_timeout:g} s while {what}; the machine "
            'is hung or overloaded. If it is only slow, raise "io_timeout" in the target file.'
        )

    @contextlib.contextmanager
    def _deadline(self, chan: paramiko.Channel, what: str) -> Iterator[None]:
        """Close ``chan`` when the request made inside takes longer than ``io_timeout``.

        paramiko waits for the answer to a channel request (exec, subsystem)
        without a timeout; closing the channel ends that wait.
        """
        fired = threading.Event()

        def expire() -> None:
            fired.set()
            with contextlib.suppress(Exception):  # the connection may be gone as well
                chan.close()

        timer = threading.Timer(self.options.io_timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except (paramiko.SSHException, EOFError, OSError) as e:
            if fired.is_set():
                raise self._stalled(what) from e
            raise
        finally:
            timer.cancel()
        if fired.is_set():  # answered just as the time ran out: the channel is closed all the same
            raise self._stalled(what)

    def _lost(self, what: str, e: BaseException) -> TargetError:
        self.on_lost()
        return TargetError(f"{self.where}: lost the SSH connection while {what}: {str(e) or type(e).__name__}.")

    def _retrying(self, what: str, op: Callable[[], Any], hint: str = "") -> Any:
        """Run ``op``; if the connection dropped, reconnect once and run it again.

        Every failure leaves as a :class:`TargetError`; ``hint`` is appended to
        the message of a failure the connection did not cause.
        """
        for attempt in (1, 2):
            try:
                return op()
            except (paramiko.SSHException, EOFError, OSError) as e:
                sftp = self._sftp_channel
                if isinstance(e, TimeoutError) or (sftp is not None and sftp.stalled):
                    self._drop_sftp()  # a request went unanswered: its replies can no longer be matched
                    raise self._stalled(what) from e
                if self.connected:
                    reason = (e.strerror if isinstance(e, OSError) else None) or str(e) or type(e).__name__
                    raise TargetError(f"{self.where}: failed {what}: {reason}{hint}.") from e
                if attempt == 2:
                    raise self._lost(what, e) from e
                log.info("%s: connection lost while %s; reconnecting once", self.where, what)
                self.check_alive()
                self.close_connection()
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- commands

    def _open_session(self) -> paramiko.Channel:
        def op() -> paramiko.Channel:
            return self._transport().open_session(timeout=self.options.connect_timeout)

        chan: paramiko.Channel = self._retrying("opening a session", op)
        return chan

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        command = build_command(argv, env=env, cwd=cwd)
        self.check_alive()
        chan = self._open_session()
        transport = chan.get_transport()
        assert isinstance(transport, _Transport)
        stdout = BoundedBuffer()
        stderr = BoundedBuffer()
        marker = _MarkerFilter(stdout)
        started = time.monotonic()
        deadline = started + timeout
        timed_out = False
        kill_deadline = 0.0
        next_alive_check = started + 1.0
        last_data = started
        try:
            with self._deadline(chan, f"starting {shlex.join(argv)!r}"):
                chan.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as e:
            chan.close()
            raise self._lost(f"running {shlex.join(argv)!r}", e) from e
        try:
            chan.shutdown_write()
            while True:
                busy = False
                while chan.recv_ready():
                    marker.write(chan.recv(_CHUNK))
                    busy = True
                while chan.recv_stderr_ready():
                    stderr.write(chan.recv_stderr(_CHUNK))
                    busy = True
                now = time.monotonic()
                if busy:
                    last_data = now
                # sshd may send the exit status before the last of the output: wait
                # for EOF too, but not forever (a background child can hold stdout open).
                if (
                    chan.exit_status_ready()
                    and not chan.recv_ready()
                    and not chan.recv_stderr_ready()
                    and (chan.eof_received or now - last_data > _EOF_GRACE)
                ):
                    break
                if now >= next_alive_check:
                    next_alive_check = now + 1.0
                    if not transport.is_active():
                        break
                    self.check_alive()
                if not timed_out and now >= deadline:
                    timed_out = True
                    # Without a process group there is nothing to kill, nor a reason to wait for it.
                    kill_deadline = now + (_KILL_GRACE if marker.pgid is not None else 0.0)
                    self._kill(transport, marker.pgid)
                if timed_out and now >= kill_deadline:
                    break
                if not busy:
                    select.select([chan], [], [], 0.1)
        except (paramiko.SSHException, EOFError, OSError) as e:
            chan.close()
            raise self._lost(f"running {shlex.join(argv)!r}", e) from e
        except BaseException:  # Ctrl-C, or the machine died: leave nothing running in the target
            if transport.is_active():
                self._kill(transport, marker.pgid)
            chan.close()
            raise
        wall = time.monotonic() - started
        if timed_out and marker.pgid is None and not chan.exit_status_ready():
            chan.close()
            raise TargetError(
                f"{self.where}: {shlex.join(argv)!r} did not start within its timeout of {timeout:g} s (the shell "
                "never reported its process group, so nothing could be killed); the machine is hung or overloaded."
            )
        marker.flush()
        signame = transport.exit_signals.pop(chan.get_id(), None)
        status = chan.recv_exit_status() if chan.exit_status_ready() else -1
        chan.close()
        if status == -1 and signame is None and not timed_out and not transport.is_active():
            raise self._lost(f"running {shlex.join(argv)!r}", EOFError("connection closed"))
        sig = _signal_number(signame) if signame else None
        exit_code = status if status >= 0 and signame is None and not timed_out else None
        return Completed(
            argv=list(argv),
            exit_code=exit_code,
            signal=sig,
            stdout=stdout.text(),
            stderr=stderr.text(),
            wall=wall,
            timed_out=timed_out,
        )

    def _kill(self, transport: paramiko.Transport, pgid: int | None) -> None:
        """Kill process group ``pgid`` over a second channel of ``transport``; never raises."""
        if pgid is None:
            log.warning("%s: the command never reported its process group; cannot kill it", self.where)
            return
        try:
            chan = transport.open_session(timeout=self.options.connect_timeout)
            with self._deadline(chan, f"killing process group {pgid}"):
                chan.exec_command(kill_command(pgid))
            chan.status_event.wait(self.options.connect_timeout)
            chan.close()
        except (paramiko.SSHException, EOFError, OSError, TargetError) as e:
            log.warning("%s: could not kill process group %d: %s", self.where, pgid, e)

    # ----------------------------------------------------------------- files

    def _sftp(self) -> paramiko.SFTPClient:
        """The SFTP client; every request it makes must be answered within ``io_timeout``."""
        with self._connect_lock:
            self.connect()
            if self._sftp_client is None:
                transport = self._transport()
                chan = transport.open_session(timeout=self.options.connect_timeout)
                chan.settimeout(self.options.io_timeout)
                with self._deadline(chan, "starting SFTP"):
                    chan.invoke_subsystem("sftp")
                wrapped = _SftpChannel(chan)
                self._sftp_channel = wrapped
                self._sftp_client = paramiko.SFTPClient(wrapped)  # type: ignore[arg-type]  # a Channel, wrapped
            return self._sftp_client

    def put(self, local: Path, remote: str) -> None:
        def op() -> None:
            upload(self._sftp(), local, remote)

        self._retrying(f'copying "{local}" to "{remote}"', op, "; check free space and permissions there")

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        def op() -> None:
            download(self._sftp(), remote, local, limit=limit)

        self._retrying(f'copying "{remote}" to "{local}"', op, "; check that it exists and is readable there")

    # ----------------------------------------------------------------- facts and ports

    def forward(self, port: int) -> tuple[str, int]:
        """A 127.0.0.1 listener whose connections are tunnelled to ``port`` in the target."""
        with self._lock:
            fwd = self._forwarders.get(port)
            if fwd is None or not fwd.is_alive():
                self.connect()
                fwd = _Forwarder(self, port)
                fwd.start()
                self._forwarders[port] = fwd
            return ("127.0.0.1", fwd.local_port)

    def open_tunnel(self, port: int, origin: tuple[str, int]) -> paramiko.Channel:
        def op() -> paramiko.Channel:
            return self._transport().open_channel(
                "direct-tcpip", ("127.0.0.1", port), origin, timeout=self.options.connect_timeout
            )

        chan: paramiko.Channel = self._retrying(f"opening a tunnel to port {port}", op)
        return chan


class _Forwarder(threading.Thread):
    """Accepts on 127.0.0.1 and pumps each connection through a direct-tcpip channel."""

    def __init__(self, session: SshSession, port: int) -> None:
        super().__init__(name=f"leapfrog-forward-{port}", daemon=True)
        self.session = session
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.5)
        self.local_port: int = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, addr = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            threading.Thread(target=self._pump, args=(conn, addr), name=f"{self.name}-pump", daemon=True).start()

    def _pump(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        with self.open_lock:
            self.open.add(conn)
        chan: paramiko.Channel | None = None
        try:
            chan = self.session.open_tunnel(self.port, addr)
            waitables: list[Any] = [conn, chan]
            while not self.stopping.is_set():
                ready, _, _ = select.select(waitables, [], [], 0.5)
                if conn in ready:
                    data = conn.recv(_CHUNK)
                    if not data:
                        break
                    chan.sendall(data)
                if chan in ready:
                    data = chan.recv(_CHUNK)
                    if not data:
                        break
                    conn.sendall(data)
        except (OSError, EOFError, paramiko.SSHException, TargetError) as e:
            log.info("forward to port %d ended: %s", self.port, e)
        finally:
            if chan is not None:
                chan.close()
            conn.close()
            with self.open_lock:
                self.open.discard(conn)

    def close(self) -> None:
        self.stopping.set()
        self.listener.close()
        with self.open_lock:
            for conn in list(self.open):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self.join(timeout=2)


# --------------------------------------------------------------------------- the target


class SshTarget(Target):
    """A machine leapfrog reaches over SSH and does not manage (a board, a server)."""

    kind = "ssh"
    emulation = "board"

    Options = SshOptions

    def __init__(
        self,
        config: TargetConfig,
        *,
        packages: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(config, packages=packages, progress=progress)
        self.session = SshSession(self.options, target_name=self.name)

    @property
    def options(self) -> SshOptions:
        opts: SshOptions = self.config.options
        return opts

    def __repr__(self) -> str:
        return f"<SshTarget {self.name!r} {self.session!r}>"

    def start(self) -> None:
        self.session.connect()

    def handle(self) -> dict[str, Any]:
        # The file says how to log in; connecting here first means a host key
        # accepted on first use is in known_hosts before another process checks it.
        self.session.connect()
        return {}

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> SshTarget:
        """Its own SSH connection to the same machine; ``stop()`` closes just that."""
        target = cls(config)
        target.session.connect()
        return target

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        return self.session.run(argv, timeout=timeout, env={**self.config.env, **(env or {})}, cwd=cwd)

    def put(self, local: Path, remote: str) -> None:
        self.session.put(local, remote)

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        self.session.get(remote, local, limit=limit)

    def forward(self, port: int) -> tuple[str, int]:
        return self.session.forward(port)

    def facts(self) -> TargetFacts:
        return probe_facts(self)

    def stop(self) -> None:
        self.session.close()
