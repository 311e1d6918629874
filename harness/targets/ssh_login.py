"""Logging in over SSH: host keys, credentials, and the paramiko Transport leapfrog uses.

Host keys are checked against ``known_hosts``; an unknown host is refused
unless ``accept_new_host_key`` is true, and a host whose key *changed* is
always refused.  :func:`open_client` logs in and raises paramiko's or the
socket's own exception; :func:`login_error` turns one into the
:class:`TargetError` a user reads.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

import paramiko
from paramiko.common import MSG_CHANNEL_REQUEST

from harness.errors import TargetError
from harness.kinds import SshOptions
from harness.sshkeys import known_hosts_name

log = logging.getLogger(__name__)
#: paramiko's own messages while probing a machine that is still booting: expected failures, kept quiet.
_QUIET = "harness.targets.ssh.probing"
logging.getLogger(_QUIET).propagate = False
logging.getLogger(_QUIET).addHandler(logging.NullHandler())


def _channel_request(chan: paramiko.Channel, m: paramiko.Message) -> None:
    """Note an "exit-signal" request, then let paramiko handle the request as usual."""
    position = m.packet.tell()
    if m.get_text() == "exit-signal":
        m.get_boolean()  # want_reply
        name = m.get_text()
        transport = chan.get_transport()
        if isinstance(transport, Transport):
            transport.exit_signals[chan.get_id()] = name
    m.packet.seek(position)
    paramiko.Channel._handle_request(chan, m)  # type: ignore[attr-defined]


class Transport(paramiko.Transport):
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


def signal_number(name: str) -> int | None:
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return None


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


def open_client(o: SshOptions, where: str, known: Path, *, quiet: bool = False) -> paramiko.SSHClient:
    """A logged-in client; raise paramiko's or the socket's own exception on failure.

    ``where`` names the target in messages; ``known`` is the ``known_hosts``
    file; ``quiet`` silences paramiko's tracebacks, for polling a machine that
    is still booting.
    """
    client = paramiko.SSHClient()
    if quiet:
        client.set_log_channel(_QUIET)
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
                f'{where}: password_env names "{o.password_env}", but that environment '
                "variable is not set; export it before running leapfrog."
            )
    key_file: str | None = None
    if o.key_file:
        key_file = str(Path(o.key_file).expanduser())
        if not Path(key_file).is_file():
            raise TargetError(f'{where}: key_file "{o.key_file}" does not exist; fix the path in the target file.')
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
            transport_factory=Transport,
        )
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(15)
    return client


def refused_by_host(e: BaseException) -> bool:
    """True when the host answered and refused us (its key or our login), not when it is unreachable."""
    return isinstance(e, paramiko.BadHostKeyException | paramiko.AuthenticationException | _UnknownHostKey)


def login_error(e: paramiko.SSHException | OSError | EOFError, o: SshOptions, where: str, known: Path) -> TargetError:
    """The error a user reads for a failed :func:`open_client`, naming the fix."""
    if isinstance(e, paramiko.BadHostKeyException):
        return TargetError(
            f"{where}: the host key CHANGED (now {e.key.get_name()} "
            f"{e.key.fingerprint}, expected {e.expected_key.fingerprint} from {known}). "
            "This may be an attack; if the machine was reinstalled, remove its old line "
            f'with: ssh-keygen -R "{known_hosts_name(o.host, o.port)}" -f {known}'
        )
    if isinstance(e, paramiko.AuthenticationException):
        how = (
            f'the password from "${o.password_env}"'
            if o.password_env
            else f'key "{o.key_file}"'
            if o.key_file
            else "ssh-agent and ~/.ssh keys"
        )
        return TargetError(f"{where}: login refused with {how}; check user, key_file and password_env.")
    if isinstance(e, _UnknownHostKey):
        return TargetError(
            f"{where}: the host key is unknown (not in {known}). Check its "
            f"fingerprint and add it (ssh-keyscan -p {o.port} {o.host} >> {known}), "
            "or set accept_new_host_key = true to trust it on first use."
        )
    if isinstance(e, paramiko.SSHException):
        return TargetError(f"{where}: SSH failed: {e}; check that sshd runs there.")
    return TargetError(f"{where}: cannot connect: {e}; check host, port and that the machine is up.")
