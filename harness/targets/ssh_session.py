"""One SSH connection and what targets do over it: run commands, move files, forward ports.

Every wait has a deadline: connecting and logging in ``connect_timeout``; the
server's answer to an exec request, and each SFTP request, ``io_timeout`` (the
default fits a VM under TCG, where one request can take a minute); a command
its own ``timeout`` plus a short grace for the kill.  A machine that stops
answering is a :class:`TargetError` within those deadlines, never a hang.

Logging in is :mod:`harness.targets.ssh_login`, the command string
:mod:`harness.targets.ssh_command`, files :mod:`harness.targets.sftp` and
port forwarding :mod:`harness.targets.ssh_forward`.  The ``ssh`` and
``qemu-vm`` backends both reach their machine through :class:`SshSession`
(:class:`harness.targets.ssh_base.SshBackedTarget`).
"""

from __future__ import annotations

import contextlib
import logging
import select
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko

from harness.errors import TargetError
from harness.kinds import SshOptions
from harness.paths import default_known_hosts
from harness.targets._common import GET_LIMIT
from harness.targets._proc import BoundedBuffer
from harness.targets.base import Completed
from harness.targets.sftp import SftpChannel, download, upload
from harness.targets.ssh_command import MarkerFilter, build_command, kill_command, tag_of
from harness.targets.ssh_forward import Forwarder
from harness.targets.ssh_login import Transport, login_error, open_client, refused_by_host, signal_number

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
#: Seconds to wait for a killed command's channel to close before giving up on it.
_KILL_GRACE = 10.0
#: After the exit status, how long to wait for EOF while no more output arrives.
_EOF_GRACE = 1.0


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
        self._sftp_channel: SftpChannel | None = None
        self._forwarders: dict[int, Forwarder] = {}
        self._lock = threading.Lock()  # forwarders
        self._connect_lock = threading.RLock()  # run() and forwarder threads may reconnect at once
        #: The machine's Python, which scans for what a timed-out command left (its target's ``python``).
        self.python = "python3"

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
        return Path(self.options.known_hosts).expanduser() if self.options.known_hosts else default_known_hosts()

    def connect_once(self, *, quiet: bool = False) -> None:
        """Open the connection; raise paramiko's or the socket's own exception on failure.

        ``quiet`` silences paramiko's tracebacks, for polling a machine that is still booting.
        """
        self._client = open_client(self.options, self.where, self.known_hosts, quiet=quiet)
        self._sftp_client = None

    def connect(self) -> None:
        """Connect if not connected; every failure becomes a :class:`TargetError`."""
        with self._connect_lock:
            if not self.connected:
                self.close_connection()
                self._connect()

    def _connect(self) -> None:
        try:
            self.connect_once()
        except (paramiko.SSHException, OSError, EOFError) as e:
            if not refused_by_host(e):
                self.check_alive()  # the machine may be gone: that is the error to report
            raise login_error(e, self.options, self.where, self.known_hosts) from e

    @property
    def connected(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def _transport(self) -> Transport:
        with self._connect_lock:
            self.connect()
            assert self._client is not None
            transport = self._client.get_transport()
            assert isinstance(transport, Transport)
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
        tag = tag_of(env)  # what the kill on timeout finds besides the process group
        self.check_alive()
        chan = self._open_session()
        transport = chan.get_transport()
        assert isinstance(transport, Transport)
        stdout = BoundedBuffer()
        stderr = BoundedBuffer()
        marker = MarkerFilter(stdout)
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
                    self._kill(transport, marker.pgid, tag)
                if timed_out and now >= kill_deadline:
                    break
                if not busy:
                    select.select([chan], [], [], 0.1)
        except (paramiko.SSHException, EOFError, OSError) as e:
            chan.close()
            raise self._lost(f"running {shlex.join(argv)!r}", e) from e
        except BaseException:  # Ctrl-C, or the machine died: leave nothing running in the target
            if transport.is_active():
                self._kill(transport, marker.pgid, tag)
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
        sig = signal_number(signame) if signame else None
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

    def _kill(self, transport: paramiko.Transport, pgid: int | None, tag: str | None = None) -> None:
        """Kill process group ``pgid`` (and what carries ``tag``) over another channel; never raises."""
        if pgid is None:
            log.warning("%s: the command never reported its process group; cannot kill it", self.where)
            return
        try:
            chan = transport.open_session(timeout=self.options.connect_timeout)
            with self._deadline(chan, f"killing process group {pgid}"):
                chan.exec_command(kill_command(pgid, tag, self.python))
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
                wrapped = SftpChannel(chan)
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
                fwd = Forwarder(port, self.open_tunnel)
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
