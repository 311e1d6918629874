"""OS services: mmap, subprocess, resource limits, clocks, loopback sockets, select."""

from __future__ import annotations

import errno
import mmap
import os
import resource
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

# ---------------------------------------------------------------- mmap


def test_mmap_anonymous(metrics: dict[str, Any]) -> None:
    size = 4 * mmap.PAGESIZE
    with mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) as m:
        assert len(m) == size
        assert m[:16] == b"\0" * 16
        pattern = bytes(range(256)) * (size // 256)
        m.write(pattern)
        assert m.tell() == size
        assert m[mmap.PAGESIZE : mmap.PAGESIZE + 4] == pattern[mmap.PAGESIZE : mmap.PAGESIZE + 4]
        assert m.find(b"\xfe\xff\x00\x01", 0) == 254
        m[0:5] = b"hello"
        m.seek(0)
        assert m.read(5) == b"hello"
        if hasattr(mmap, "MADV_DONTNEED"):
            m.madvise(mmap.MADV_DONTNEED, 0, mmap.PAGESIZE)
            # Linux zero-fills dropped private anonymous pages; record what we see.
            metrics["madv_dontneed_zeroes"] = m[:5] == b"\0" * 5
            assert m[:5] in (b"\0" * 5, b"hello")
            assert m[mmap.PAGESIZE : mmap.PAGESIZE + 2] == pattern[:2]  # other pages kept


def test_mmap_file_backed(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"\0" * (2 * mmap.PAGESIZE))
    with path.open("r+b") as f, mmap.mmap(f.fileno(), 0) as m:
        m[mmap.PAGESIZE - 2 : mmap.PAGESIZE + 2] = b"ABCD"  # straddles a page boundary
        m.flush()
    assert path.read_bytes()[mmap.PAGESIZE - 2 : mmap.PAGESIZE + 2] == b"ABCD"
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as ro:
        assert ro.rfind(b"ABCD") == mmap.PAGESIZE - 2
        try:
            ro[0] = 1
        except TypeError:
            pass
        else:
            raise AssertionError("read-only mapping accepted a write")
    # MAP_SHARED anonymous memory is visible across fork.
    shared = mmap.mmap(-1, mmap.PAGESIZE, flags=mmap.MAP_SHARED)
    pid = os.fork()
    if pid == 0:  # child: write and leave without running any cleanup
        shared[:6] = b"forked"
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shared[:6] == b"forked"
    shared.close()


# ---------------------------------------------------------------- subprocess


def test_subprocess_run(metrics: dict[str, Any]) -> None:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
    metrics["python_startup_ms"] = round((time.perf_counter() - start) * 1000, 1)
    code = (
        "import sys, os; data = sys.stdin.read(); print(data.upper());"
        "print(os.environ['LF_X'], file=sys.stderr); sys.exit(3)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input="riscv",
        capture_output=True,
        text=True,
        env={**os.environ, "LF_X": "42"},
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stdout == "RISCV\n"
    # Emulators may add their own notices on stderr (qemu: "vector version is not specified").
    assert proc.stderr.splitlines()[-1:] == ["42"]
    shell = subprocess.run("printf 'a b c\\n' | wc -w", shell=True, capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0
    assert shell.stdout.strip() == "3"
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read()[::-1])"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as p:
        out, _ = p.communicate(b"x" * 100_000 + b"end", timeout=60)
    assert out == b"dne" + b"x" * 100_000


# ---------------------------------------------------------------- resource


def _open_devnull(fds: list[int], count: int) -> None:
    for _ in range(count):
        fds.append(os.open(os.devnull, os.O_RDONLY))


def test_resource_limits(metrics: dict[str, Any]) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    metrics["rlimit_nofile_soft"] = soft
    stack_soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    metrics["rlimit_stack_soft"] = stack_soft
    assert hard == resource.RLIM_INFINITY or soft <= hard
    assert soft >= 64
    lowered = 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (lowered, hard)
        fds: list[int] = []
        try:
            with pytest.raises(OSError, match="Too many open files") as excinfo:
                _open_devnull(fds, lowered + 1)
            assert excinfo.value.errno == errno.EMFILE
        finally:
            for fd in fds:
                os.close(fd)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    metrics["maxrss_kb"] = usage.ru_maxrss
    assert usage.ru_maxrss > 1000
    assert usage.ru_utime > 0


# ---------------------------------------------------------------- clocks


def test_clock_info(metrics: dict[str, Any]) -> None:
    for name in ("time", "monotonic", "perf_counter", "process_time", "thread_time"):
        info = time.get_clock_info(name)
        metrics[f"clock_{name}_impl"] = info.implementation
        metrics[f"clock_{name}_resolution"] = info.resolution
        assert 0 < info.resolution <= 0.02, (name, info)
    assert time.get_clock_info("monotonic").monotonic
    assert not time.get_clock_info("time").monotonic
    assert abs(time.time() - time.clock_gettime(time.CLOCK_REALTIME)) < 1.0
    assert time.time() > 1.6e9  # the target's wall clock is set (after 2020)
    assert time.clock_getres(time.CLOCK_MONOTONIC) <= 0.02


def test_monotonic_and_resolution(metrics: dict[str, Any]) -> None:
    samples = [time.monotonic_ns() for _ in range(3000)]
    assert all(a <= b for a, b in pairwise(samples))
    perf = [time.perf_counter_ns() for _ in range(3000)]
    assert all(a <= b for a, b in pairwise(perf))
    steps = [b - a for a, b in pairwise(perf) if b > a]
    assert steps, "perf_counter never advanced over 3000 reads"
    metrics["perf_counter_min_step_ns"] = min(steps)
    metrics["perf_counter_median_step_ns"] = sorted(steps)[len(steps) // 2]
    start = time.perf_counter()
    time.sleep(0.05)
    slept = time.perf_counter() - start
    metrics["sleep_50ms_actual_s"] = round(slept, 4)
    assert 0.049 <= slept < 5.0
    cpu0 = time.process_time()
    sum(i * i for i in range(200_000))
    assert time.process_time() > cpu0


# ---------------------------------------------------------------- sockets (127.0.0.1 only)


def _echo_server(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        while chunk := conn.recv(65536):
            conn.sendall(chunk)


def test_tcp_loopback_echo(metrics: dict[str, Any]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        thread = threading.Thread(target=_echo_server, args=(server,), daemon=True)
        thread.start()
        payload = bytes(range(256)) * 1024  # 256 KiB
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            received = bytearray()
            sender = threading.Thread(target=client.sendall, args=(payload,))
            sender.start()
            while len(received) < len(payload):
                chunk = client.recv(65536)
                assert chunk, "connection closed early"
                received += chunk
            sender.join(30)
            client.shutdown(socket.SHUT_WR)
            assert client.recv(1) == b""
        elapsed = time.perf_counter() - start
        thread.join(30)
    assert bytes(received) == payload
    metrics["tcp_echo_mb_per_s"] = round(len(payload) / 1e6 / max(elapsed, 1e-9), 2)


def test_udp_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        b.settimeout(10)
        for i in range(5):
            a.sendto(f"datagram {i}".encode(), b.getsockname())
        got = [b.recvfrom(100) for _ in range(5)]
        sender = a.getsockname()
    assert [d for d, _ in got] == [f"datagram {i}".encode() for i in range(5)]
    assert all(addr == sender for _, addr in got)


def test_select_and_selectors(metrics: dict[str, Any]) -> None:
    left, right = socket.socketpair()
    with left, right:
        readable, writable, _ = select.select([left, right], [left], [], 0)
        assert readable == []
        assert writable == [left]
        right.sendall(b"wake")
        readable, _, _ = select.select([left], [], [], 5)
        assert readable == [left]
        assert left.recv(10) == b"wake"
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(left, select.POLLIN)
            assert poller.poll(0) == []
            right.sendall(b"x")
            assert poller.poll(5000) == [(left.fileno(), select.POLLIN)]
            left.recv(10)
        with selectors.DefaultSelector() as sel:
            metrics["default_selector"] = type(sel).__name__
            sel.register(left, selectors.EVENT_READ, data="left")
            assert sel.select(timeout=0) == []
            right.sendall(b"y")
            events = sel.select(timeout=5)
            assert len(events) == 1
            assert events[0][0].data == "left"
            assert events[0][1] & selectors.EVENT_READ
    if sys.platform == "linux":
        assert hasattr(select, "epoll")
