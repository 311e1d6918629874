"""A server in a target, reached from the host: the service itself, where it listens, a JSON client."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.loadgen.summary import ServingError

if TYPE_CHECKING:
    from harness.targets.base import Completed, Target

#: Bound on the server log quoted in a failure message (characters, each stream).
LOG_LIMIT = 6000


# ----------------------------------------------------------------------------- HTTP


class JsonClient:
    """A keep-alive HTTP client for JSON endpoints (httpx), shared by the SUT's threads."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, connections: int = 8) -> None:
        try:
            import httpx
        except ImportError as e:
            raise ServingError("httpx is not installed on the host; run: python3 -m pip install httpx") from e
        self.base_url = base_url
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._http = httpx.Client(base_url=base_url, timeout=timeout, limits=limits)
        self._transport_error: type[Exception] = httpx.TransportError

    def get(self, path: str) -> Any:
        return self._checked(self._http.get(path))

    def post(self, path: str, body: Any) -> Any:
        return self._checked(self._http.post(path, json=body))

    def reachable(self, path: str) -> Any | None:
        """The JSON at ``path``, or ``None`` while the server does not answer yet."""
        try:
            return self.get(path)
        except (self._transport_error, ServingError):
            return None

    def _checked(self, response: Any) -> Any:
        if response.status_code != 200:
            raise ServingError(
                f"{response.request.method} {response.request.url} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json()

    def close(self) -> None:
        self._http.close()


# ----------------------------------------------------------------------------- a server in a target


def listen_address(target: Target) -> tuple[str, int]:
    """Where a server inside ``target`` listens: (bind address, port; 0 = any free port).

    The target says (:meth:`Target.listen_address`): native and chroot share the
    host's network and ssh/qemu-vm tunnel to the target's loopback (127.0.0.1 and
    a port the server picks); a docker target publishes only the suite's
    ``ports``, so the server listens on every interface of the container's own
    network namespace, on the first of them.
    """
    return target.listen_address()


def _tail(text: str, limit: int = LOG_LIMIT) -> str:
    return text if len(text) <= limit else f"[... {len(text) - limit} characters cut ...]\n" + text[-limit:]


class TargetService:
    """A long-running command inside a target: a server.

    ``target.run`` blocks until its command ends, so it runs in a background
    thread; :meth:`stop` runs ``kill`` in the target against the pid the command
    wrote to ``pid_file`` (SIGTERM, then SIGKILL after ``grace``) and joins the
    thread.  The run's ``timeout`` bounds the service's life in any case, and the
    target's own ``stop()`` kills whatever is left after an error or Ctrl-C.
    """

    def __init__(
        self,
        target: Target,
        argv: list[str],
        *,
        pid_file: str,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.target = target
        self.argv = argv
        self.pid_file = pid_file
        self.timeout = timeout
        self.env = env
        self.cwd = cwd
        self.completed: Completed | None = None
        self.failure: BaseException | None = None
        self.started_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"leapfrog-service-{target.name}", daemon=True)

    def _run(self) -> None:
        try:
            self.completed = self.target.run(self.argv, timeout=self.timeout, env=self.env, cwd=self.cwd)
        except BaseException as e:  # reported by log() and the caller's health wait
            self.failure = e

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def read(self, path: str) -> str | None:
        """Text of a small file in the target, or ``None`` when it is not there (yet)."""
        done = self.target.run(["cat", path], timeout=60)
        return done.stdout if done.ok else None

    def pid(self) -> int | None:
        text = self.read(self.pid_file)
        try:
            return int(text.strip()) if text else None
        except ValueError:
            return None

    def stop(self, grace: float = 15.0) -> Completed | None:
        """End the service (SIGTERM, SIGKILL after ``grace`` s) and return how it ended."""
        if self._thread.ident is None:
            return None
        for sig in ("TERM", "KILL"):
            if not self.running:
                break
            pid = self.pid()
            if pid is not None:
                self.target.run(["kill", f"-{sig}", str(pid)], timeout=60)
            self._thread.join(grace)
        return self.completed

    def log(self, limit: int = LOG_LIMIT) -> str:
        """The service's stdout and stderr (bounded); complete once it has ended."""
        if self.failure is not None:
            return f"the command could not run: {type(self.failure).__name__}: {self.failure}"
        if self.completed is None:
            return "(still running: no output yet)"
        c = self.completed
        how = f"exit code {c.exit_code}" if c.exit_code is not None else f"signal {c.signal}"
        if c.timed_out:
            how = f"killed after {self.timeout:.0f} s"
        return (
            f"$ {shlex.join(c.argv)}   [{how}, {c.wall:.1f} s]\n"
            f"--- stdout ---\n{_tail(c.stdout, limit)}\n--- stderr ---\n{_tail(c.stderr, limit)}"
        )


def wait_until(
    service: TargetService, ready: Callable[[], Any | None], *, timeout: float, what: str, poll: float = 1.0
) -> Any:
    """Poll ``ready`` until it returns something; the service dying or ``timeout`` is a ServingError.

    On failure the service is stopped and its log is in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = ready()
        if value is not None:
            return value
        if not service.running:
            service.stop()
            raise ServingError(f"the server ended before {what}.\n{service.log()}")
        if time.monotonic() >= deadline:
            service.stop()
            raise ServingError(f"the server was not {what} after {timeout:.0f} s.\n{service.log()}")
        time.sleep(poll)
