"""multiprocessing (default and spawn), threads, and signal delivery."""

from __future__ import annotations

import math
import multiprocessing as mp
import operator
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def test_pool_default_start_method(metrics: dict[str, Any]) -> None:
    ctx = mp.get_context()
    metrics["mp_default_start_method"] = ctx.get_start_method()
    start = time.perf_counter()
    with ctx.Pool(2) as pool:
        assert pool.map(abs, range(-50, 0)) == list(range(50, 0, -1))
        assert pool.starmap(operator.mul, [(i, i) for i in range(20)]) == [i * i for i in range(20)]
        pids = {pool.apply(os.getpid) for _ in range(4)}
    metrics["mp_default_pool_s"] = round(time.perf_counter() - start, 3)
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_pool_spawn(metrics: dict[str, Any]) -> None:
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    with ctx.Pool(2) as pool:
        # Built-in callables only: nothing from this suite has to import in the child.
        assert pool.map(math.factorial, [5, 10, 20]) == [120, 3628800, 2432902008176640000]
        parents = {pool.apply(os.getppid) for _ in range(2)}
        children = {pool.apply(os.getpid) for _ in range(2)}
    metrics["mp_spawn_pool_s"] = round(time.perf_counter() - start, 3)
    assert parents == {os.getpid()}
    assert os.getpid() not in children


def test_process_pipe_and_shared_value() -> None:
    ctx = mp.get_context("fork")  # children run code from this module
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=child_end.send, args=({"arch": os.uname().machine, "n": 2**70},))
    proc.start()
    assert parent_end.poll(60)
    assert parent_end.recv() == {"arch": os.uname().machine, "n": 2**70}
    proc.join(60)
    assert proc.exitcode == 0
    value = ctx.Value("q", 0)
    workers = [ctx.Process(target=_add_to, args=(value, 10)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert value.value == 20


def _add_to(value: Any, n: int) -> None:  # runs in forked children only
    for _ in range(n):
        with value.get_lock():
            value.value += 1


def test_threads_lock_and_pool(metrics: dict[str, Any]) -> None:
    counter = 0
    lock = threading.Lock()
    barrier = threading.Barrier(4)
    names: set[str] = set()

    def work() -> None:
        nonlocal counter
        barrier.wait(timeout=30)
        names.add(threading.current_thread().name)
        for _ in range(2000):
            with lock:
                counter += 1

    threads = [threading.Thread(target=work, name=f"w{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert counter == 8000
    assert names == {"w0", "w1", "w2", "w3"}
    with ThreadPoolExecutor(max_workers=4) as ex:
        assert list(ex.map(pow, range(10), [3] * 10)) == [i**3 for i in range(10)]
        ids = set(ex.map(lambda _: threading.get_native_id(), range(16)))
    assert len(ids) >= 1
    assert threading.get_native_id() not in ids
    gil = getattr(sys, "_is_gil_enabled", None)
    metrics["gil_enabled"] = gil() if gil is not None else True
    metrics["thread_stack_size"] = threading.stack_size()


def test_thread_local_and_event() -> None:
    local = threading.local()
    local.value = "main"
    event = threading.Event()
    seen: list[str] = []

    def worker() -> None:
        seen.append(getattr(local, "value", "unset"))
        local.value = "worker"
        event.set()

    t = threading.Thread(target=worker)
    t.start()
    assert event.wait(30)
    t.join(30)
    assert seen == ["unset"]
    assert local.value == "main"


def test_signal_handler_delivery() -> None:
    got: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        signal.raise_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert got == [signal.SIGUSR1, signal.SIGUSR1]


def test_itimer_sigalrm(metrics: dict[str, Any]) -> None:
    fired: list[float] = []
    old = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    start = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        while not fired and time.monotonic() - start < 5:
            time.sleep(0.005)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert fired, "SIGALRM from setitimer never arrived"
    delay = fired[0] - start
    metrics["itimer_50ms_actual_s"] = round(delay, 4)
    assert delay >= 0.045


def test_sigwait_blocked_signal() -> None:
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        threading.Timer(0.02, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        assert signal.sigwait({signal.SIGUSR2}) == signal.SIGUSR2
        os.kill(os.getpid(), signal.SIGUSR2)
        assert signal.SIGUSR2 in signal.sigpending()
        info = signal.sigtimedwait({signal.SIGUSR2}, 5)
        assert info is not None
        assert info.si_signo == signal.SIGUSR2
        assert info.si_pid == os.getpid()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def test_child_killed_by_signal() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    abort = "import os, resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.abort()"
    status = subprocess.run([sys.executable, "-c", abort], capture_output=True, timeout=60)
    assert status.returncode == -signal.SIGABRT
