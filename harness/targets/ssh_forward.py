"""Port forwarding over SSH: a 127.0.0.1 listener whose connections go through direct-tcpip channels."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

import paramiko

from harness.errors import TargetError

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


class Forwarder(threading.Thread):
    """Accepts on 127.0.0.1 and pumps each connection through a direct-tcpip channel."""

    def __init__(self, port: int, open_tunnel: Callable[[int, tuple[str, int]], paramiko.Channel]) -> None:
        """``open_tunnel(port, origin)`` opens a direct-tcpip channel to ``port`` in the target."""
        super().__init__(name=f"leapfrog-forward-{port}", daemon=True)
        self.open_tunnel = open_tunnel
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
            chan = self.open_tunnel(self.port, addr)
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
