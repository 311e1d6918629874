"""The Docker engine one docker target talks to: connecting, naming failures, this host's leftovers.

Every engine call of the backend runs inside :meth:`Engine.errors`, which turns
SDK, HTTP and socket errors into one ``TargetError`` naming the target, the
engine and what failed.  The SDK is imported only when an engine is reached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import TargetError
from harness.userland import owner_gone, process_start

__all__ = ["DEFAULT_HOST", "ENGINE_HELP", "Engine", "host_id", "is_stale", "process_start", "where_is_local"]

DEFAULT_HOST = "unix:///var/run/docker.sock"

ENGINE_HELP = (
    "Start the engine (`dockerd >/tmp/dockerd.log 2>&1 &` or `systemctl start docker`; "
    "install it with `apt-get install docker.io`), or point DOCKER_HOST or the target's "
    '"docker_host" key at a running engine.'
)


def preflight(url: str) -> None:
    """Raise OSError when nothing listens at a unix:// or tcp:// engine address.

    Checked with a socket that is always closed, before the SDK (which leaks its
    socket when the connection fails) is involved.  ssh:// is left to the SDK.
    """
    if url.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(url[len("unix://") :])
    elif url.startswith(("tcp://", "http://", "https://")):
        parts = urllib.parse.urlsplit(url)
        with socket.create_connection((parts.hostname or "localhost", parts.port or 2375), timeout=10):
            pass


def where_is_local(url: str) -> bool:
    """True for the engine on this host (unset, unix:// or tcp:// to a loopback address)."""
    if not url or url.startswith("unix://"):
        return True
    host = urllib.parse.urlsplit(url).hostname or ""
    return url.startswith("tcp://") and host in ("localhost", "127.0.0.1", "::1")


class Engine:
    """One target's connection to a Docker engine, made on first use and refused after :meth:`close`.

    ``name`` (the target) and :attr:`where` (the engine) go into every error.
    """

    def __init__(self, name: str, docker_host: str) -> None:
        self.name = name
        self.docker_host = docker_host  # "": DOCKER_HOST, else the local socket
        self.client: Any = None  # the SDK's DockerClient once connected
        self.closed = False  # after close(), nothing reconnects until reopen()

    @property
    def where(self) -> str:
        """The engine's address, for messages."""
        return self.docker_host or os.environ.get("DOCKER_HOST", "") or f"{DEFAULT_HOST} (DOCKER_HOST unset)"

    @property
    def is_local(self) -> bool:
        return where_is_local(self.docker_host or os.environ.get("DOCKER_HOST", ""))

    def connect(self) -> Any:
        """The SDK client, connecting (and pinging the engine) the first time."""
        if self.client is not None:
            return self.client
        if self.closed:
            raise TargetError(f"target {self.name}: stopped; start it again to run commands.")
        try:
            import docker
        except ImportError as e:
            raise TargetError(f"target {self.name}: the docker SDK is missing; run: pip install docker") from e
        client = None
        try:
            preflight(self.docker_host or os.environ.get("DOCKER_HOST", "") or DEFAULT_HOST)
            if self.docker_host:
                client = docker.DockerClient(base_url=self.docker_host, timeout=300)
            else:
                client = docker.from_env(timeout=300)
            client.ping()
        except Exception as e:  # the SDK raises DockerException, requests and socket errors alike
            if client is not None:
                client.close()
            raise TargetError(
                f"target {self.name}: cannot reach the Docker engine at {self.where}: {e}. {ENGINE_HELP}"
            ) from e
        self.client = client
        return client

    @property
    def api(self) -> Any:
        """The SDK's low-level API client."""
        return self.connect().api

    def reopen(self) -> None:
        """Allow connecting again after :meth:`close` (a target started anew)."""
        self.closed = False

    def take(self) -> Any:
        """Hand over the client (or None) and refuse to connect again until :meth:`reopen`."""
        client, self.client = self.client, None
        self.closed = True
        return client

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn SDK, HTTP and socket errors into a TargetError that says what failed."""
        import docker.errors
        import requests

        try:
            yield
        except TargetError:
            raise
        except docker.errors.NotFound as e:
            raise TargetError(
                f"target {self.name}: could not {doing}: {e.explanation or e}. "
                "Something outside leapfrog removed it (docker rm -f?); run again."
            ) from e
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
            raise TargetError(
                f"target {self.name}: the Docker engine at {self.where} failed to {doing}: {e}. {ENGINE_HELP}"
            ) from e

    def lost(self, during: str, error: Exception) -> TargetError:
        """The error for an engine that went away ``during`` something."""
        return TargetError(
            f"target {self.name}: lost the Docker engine at {self.where} {during}: {error}. {ENGINE_HELP}"
        )

    def remove_stale(self) -> None:
        """Remove containers of this host's leapfrog runs whose process is gone (kill -9)."""
        with self.errors("list leapfrog containers"):
            found = self.api.containers(all=True, filters={"label": ["leapfrog=1", f"leapfrog.host={host_id()}"]})
        for c in found:
            if is_stale(c.get("Labels") or {}):
                with contextlib.suppress(Exception):
                    self.api.remove_container(c["Id"], force=True, v=True)


# --------------------------------------------------------------------------- whose containers


def host_id() -> str:
    """This host's id in container labels: /etc/machine-id and a random id kept in leapfrog's cache, hashed.

    A hostname is not unique (CI runners, containers sharing the engine's
    socket), and a machine-id is copied with the image a runner starts from;
    the random id (``<cache>/docker/host-id``, made once) separates those, and
    the machine-id separates hosts that share one cache folder.
    """
    from harness.paths import docker_dir

    path = docker_dir() / "host-id"
    token = _read_text(path)
    if not re.fullmatch(r"[0-9a-f]{32}", token):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".host-id-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(16) + "\n")
        try:
            os.link(tmp, path)  # made whole, then published only if no other process was first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        token = _read_text(path)
    machine = _read_text(Path("/etc/machine-id"))
    return hashlib.sha256(f"{machine}\0{token}".encode()).hexdigest()[:24]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def is_stale(labels: dict[str, str]) -> bool:
    """True when the leapfrog process that made a container of this host is gone.

    Its pid is free, or now belongs to a process that started at another time.
    A container without a valid pid is left alone.
    """
    try:
        pid = int(labels.get("leapfrog.pid", "0"))
    except ValueError:
        return False
    return owner_gone(pid, labels.get("leapfrog.pid_start", ""))


def owner_labels() -> dict[str, str]:
    """The labels that let a later run of this host tell a container's leapfrog process is gone."""
    return {
        "leapfrog.host": host_id(),
        "leapfrog.pid": str(os.getpid()),
        "leapfrog.pid_start": process_start(os.getpid()) or "",
    }
