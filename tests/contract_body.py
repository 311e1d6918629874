"""The one contract of :class:`harness.targets.base.Target`, asserted once for every backend.

A test module subclasses :class:`Contract` as ``TestContract`` and gives it a
``target`` fixture: a started target whose file adds the environment in
:data:`TARGET_ENV` and whose suites asked for :data:`SERVE_PORT` (so a backend
that publishes chosen ports publishes it).  The unit tier runs it on native and
on ssh against a loopback SSH server; the integration tier on chroot, docker
and qemu-vm.  ``test_zz_stop_twice`` stops the target, so it runs last.

Nothing here knows a backend: what differs between backends is in their own
test modules.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.errors import TargetError
from harness.targets import _common
from harness.targets.base import OUTPUT_LIMIT, Target

#: What every contract target's file sets in ``env``; a call's ``env`` wins over it.
TARGET_ENV = {"LEAPFROG_FROM_TARGET": "yes", "LEAPFROG_OVERRIDDEN": "from-target"}
#: The port a contract target's suites ask for (suite.toml ``ports``).
SERVE_PORT = 18765

#: A server that tells the host its port in a file, then answers "pong:<what came>" until told "quit".
SERVER = """\
import os, socket, sys
bind, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((bind, port))
s.listen(4)
s.settimeout(300)
with open(out + ".part", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(out + ".part", out)
while True:
    c, _ = s.accept()
    data = c.recv(64)
    c.sendall(b"pong:" + data)
    c.close()
    if data == b"quit":
        break
"""


def sh(target: Target, script: str, timeout: float = 120) -> str:
    """Run ``script`` in the target's shell; its stdout, failing the test when it fails."""
    done = target.run(["sh", "-c", script], timeout=timeout)
    assert done.ok, f"{script!r} failed in the target: exit {done.exit_code}, {done.stderr.strip()}"
    return done.stdout


def running(target: Target) -> str:
    """The command lines of every process the target can see, one string."""
    return sh(target, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true")


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": "hello ✓\n".encode(),
        "sub/bin.dat": bytes(range(256)) * 300,
        "sub/deeper/ünï.txt": "ünï\n".encode(),
        "sub/deeper/run.sh": b"#!/bin/sh\necho ran\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "sub/deeper/run.sh").chmod(0o755)
    return files


def in_time(fn: Callable[[], object], seconds: float = 60) -> None:
    """Run ``fn``; fail instead of hanging when it blocks (as opening a FIFO would)."""
    error: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as e:  # handed to the caller's thread
            error.append(e)

    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), "the call blocked"
    if error:
        raise error[0]


class Contract:
    """Every backend: commands, copies in and out, temp folders, a served port, facts, sharing, stop."""

    # ------------------------------------------------------------------ run

    def test_exit_code_and_both_streams(self, target: Target) -> None:
        argv = ["sh", "-c", "echo out; echo ërr >&2; exit 3"]
        done = target.run(argv, timeout=60)
        assert (done.exit_code, done.signal, done.timed_out) == (3, None, False)
        assert (done.stdout, done.stderr) == ("out\n", "ërr\n")
        assert not done.ok
        assert done.argv == argv
        assert target.run(["true"], timeout=60).ok

    def test_death_by_a_signal_is_reported_as_the_signal(self, target: Target) -> None:
        done = target.run(["sh", "-c", "kill -SEGV $$"], timeout=60)
        assert (done.exit_code, done.signal) == (None, signal.SIGSEGV)
        assert not done.ok

    def test_env_of_the_file_then_of_the_call_and_cwd(self, target: Target) -> None:
        script = 'echo "$LEAPFROG_FROM_TARGET|$LEAPFROG_OVERRIDDEN|$LEAPFROG_X"; pwd'
        done = target.run(
            ["sh", "-c", script],
            timeout=60,
            env={"LEAPFROG_X": "é ü 中 'q'", "LEAPFROG_OVERRIDDEN": "call"},
            cwd="/usr",
        )
        assert done.stdout.splitlines() == ["yes|call|é ü 中 'q'", "/usr"]

    def test_large_output_is_bounded_not_fatal(self, target: Target) -> None:
        n = 2 * OUTPUT_LIMIT + 12345
        done = target.run(["sh", "-c", f"head -c {n} /dev/zero | tr '\\0' x; echo tail >&2"], timeout=300)
        assert done.ok
        assert done.stdout.startswith("x" * OUTPUT_LIMIT)
        assert len(done.stdout) < OUTPUT_LIMIT + 200
        assert f"{n - OUTPUT_LIMIT} bytes dropped" in done.stdout
        assert done.stderr == "tail\n"  # the other stream still arrives whole

    def test_invalid_utf8_is_replaced(self, target: Target) -> None:
        assert target.run(["printf", "a\\377b"], timeout=60).stdout == "a\ufffdb"

    def test_timeout_kills_the_process_tree(self, target: Target) -> None:
        token = f"{secrets.randbelow(10**6):06d}"  # other processes on a shared host never match
        start = time.monotonic()
        done = target.run(["sh", "-c", f"sleep 300.{token} & env -i sleep 301.{token} & echo started; wait"], timeout=3)
        assert done.timed_out
        assert (done.exit_code, done.signal) == (None, signal.SIGKILL)
        assert done.stdout == "started\n"  # what came before the kill is kept
        assert time.monotonic() - start < 30
        time.sleep(0.5)
        left = running(target)
        assert "cmdline" in left  # the listing itself worked
        assert f"300.{token}" not in left
        assert f"301.{token}" not in left

    # ------------------------------------------------------------------ put and get

    def test_put_then_get_round_trips_a_folder_and_a_file(self, target: Target, tmp_path: Path) -> None:
        files = make_tree(tmp_path / "src")
        base = target.make_temp_dir()
        try:
            target.put(tmp_path / "src", f"{base}/not/yet/there/suite")  # missing parents are made
            assert target.run([f"{base}/not/yet/there/suite/sub/deeper/run.sh"], timeout=60).stdout == "ran\n"
            target.get(f"{base}/not/yet/there/suite", tmp_path / "back")
            assert files_of(tmp_path / "back") == files
            assert (tmp_path / "back" / "sub" / "deeper" / "run.sh").stat().st_mode & stat.S_IXUSR
            target.put(tmp_path / "src" / "a.txt", f"{base}/single.txt")
            target.get(f"{base}/single.txt", tmp_path / "single.txt")
            assert (tmp_path / "single.txt").read_bytes() == files["a.txt"]
        finally:
            target.remove_tree(base)

    def test_get_skips_links_and_special_files_inside_a_folder(self, target: Target, tmp_path: Path) -> None:
        base = target.make_temp_dir()
        try:
            sh(
                target,
                f"cd {base} && mkdir -p out/sub && echo ok > out/a.txt && echo b > out/sub/b.txt "
                "&& ln -s /etc out/etc && ln -s /etc/passwd out/passwd && ln -s .. out/up && mkfifo out/fifo",
            )
            in_time(lambda: target.get(f"{base}/out", tmp_path / "back"))
            assert files_of(tmp_path / "back") == {"a.txt": b"ok\n", "sub/b.txt": b"b\n"}
            assert not any(p.is_symlink() for p in (tmp_path / "back").rglob("*"))
            assert sorted(p.name for p in tmp_path.iterdir()) == ["back"]  # nothing written beside it
        finally:
            target.remove_tree(base)

    @pytest.mark.parametrize(
        ("made", "kind"),
        [
            ("ln -s /etc/passwd asked", "link"),
            ("mkdir real && ln -s real asked", "link"),
            ("true", "device"),  # /dev/null: every target has one
        ],
        ids=["link-to-file", "link-to-folder", "device"],
    )
    def test_get_refuses_a_link_or_a_device_asked_for(
        self, target: Target, tmp_path: Path, made: str, kind: str
    ) -> None:
        base = target.make_temp_dir()
        try:
            sh(target, f"cd {base} && {made}")
            asked = "/dev/null" if kind == "device" else f"{base}/asked"
            with pytest.raises(TargetError, match=rf"it is a (symbolic )?{kind}\b.*copies back only regular files"):
                in_time(lambda: target.get(asked, tmp_path / "got"))
            assert list(tmp_path.iterdir()) == []  # nothing written, not even the destination
        finally:
            target.remove_tree(base)

    def test_get_of_a_missing_path_is_a_target_error(self, target: Target, tmp_path: Path) -> None:
        with pytest.raises(TargetError, match='"/no/such/leapfrog/path"'):  # the message names it
            target.get("/no/such/leapfrog/path", tmp_path / "got")
        assert list(tmp_path.iterdir()) == []

    def test_get_refuses_a_fifo_and_an_oversize_file(
        self, target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A FIFO asked for is refused without blocking; past the byte or entry cap, no cut-off copy is left."""
        base = target.make_temp_dir()
        try:
            sh(
                target,
                f"cd {base} && mkfifo results.jsonl && mkdir out && echo ok > out/a.txt "
                "&& head -c 100000 /dev/zero > out/big.bin",
            )
            with pytest.raises(TargetError, match=r"it is a FIFO; leapfrog copies back only regular files and folders"):
                in_time(lambda: target.get(f"{base}/results.jsonl", tmp_path / "r.jsonl"))
            assert not (tmp_path / "r.jsonl").exists()
            cap = r"it holds more than 50000 bytes, the most one copy back takes"
            with pytest.raises(TargetError, match=cap):
                target.get(f"{base}/out/big.bin", tmp_path / "big.bin", limit=50000)
            assert not (tmp_path / "big.bin").exists()
            with pytest.raises(
                TargetError, match=f'{base}/out" from the target: {cap} \\(passed at "{base}/out/big.bin"\\)'
            ):
                target.get(f"{base}/out", tmp_path / "capped", limit=50000)
            assert not (tmp_path / "capped" / "big.bin").exists()
            monkeypatch.setattr(_common, "GET_MAX_ENTRIES", 1)
            with pytest.raises(TargetError, match=r"it holds more than 1 files and folders"):
                target.get(f"{base}/out", tmp_path / "many")
            monkeypatch.undo()
            target.get(f"{base}/out", tmp_path / "whole")  # the default caps take it
            assert (tmp_path / "whole" / "big.bin").stat().st_size == 100000
        finally:
            target.remove_tree(base)

    # ------------------------------------------------------------------ temp folders

    def test_make_temp_dir_is_fresh_and_private_and_remove_tree_removes_it(self, target: Target) -> None:
        first, second = target.make_temp_dir(), target.make_temp_dir()
        try:
            assert first != second
            assert first.startswith("/")
            assert sh(target, f"stat -c %a {first}").strip() == "700"
            sh(target, f"mkdir -p {first}/sub && echo x > {first}/sub/f")
        finally:
            target.remove_tree(first)
            target.remove_tree(second)
        assert sh(target, f"test -e {first} || test -e {second} || echo gone") == "gone\n"

    # ------------------------------------------------------------------ a served port

    def test_a_server_listening_where_the_target_says_is_reached_through_forward(
        self, target: Target, tmp_path: Path
    ) -> None:
        (tmp_path / "server.py").write_text(SERVER)
        base = target.make_temp_dir()
        bind, port = target.listen_address()
        served: list[object] = []  # the server's Completed, or what its run() raised

        def serve() -> None:
            argv = [target.config.python, f"{base}/server.py", bind, str(port), f"{base}/port"]
            try:
                served.append(target.run(argv, timeout=300))
            except Exception as e:  # handed to the test's thread
                served.append(e)

        server = threading.Thread(target=serve, daemon=True)
        try:
            target.put(tmp_path / "server.py", f"{base}/server.py")
            server.start()
            deadline = time.monotonic() + 180
            while not (said := target.run(["cat", f"{base}/port"], timeout=60).stdout.strip()):
                assert server.is_alive(), f"the server ended before it said its port: {served}"
                assert time.monotonic() < deadline, "the server did not say its port within 3 minutes"
                time.sleep(0.5)
            host, host_port = target.forward(int(said))
            assert host == "127.0.0.1"  # only the host's loopback reaches it
            assert target.forward(int(said)) == (host, host_port)
            assert _ask(host, host_port, b"ping", deadline) == b"pong:ping"
            assert _ask(host, host_port, b"quit", deadline) == b"pong:quit"
            server.join(120)
            assert not server.is_alive()
            assert served[0].ok, served[0]  # type: ignore[attr-defined]
        finally:
            if server.is_alive():
                target.run(["sh", "-c", f"pkill -f {base}/server.py; true"], timeout=60)
            target.remove_tree(base)

    # ------------------------------------------------------------------ facts and sharing

    def test_facts_are_measured_inside(self, target: Target) -> None:
        facts = target.facts()
        assert facts.python.startswith("3.")
        assert facts.kernel
        assert facts.emulation == target.emulation
        if target.config.arch:
            assert facts.arch == target.config.arch
        if facts.arch == "riscv64":
            assert facts.isa.startswith("rv64")
            assert {"i", "m", "a", "f", "d", "c"} <= set(facts.extensions)

    def test_another_process_attaches_through_the_handle_and_its_stop_spares_the_owner(self, target: Target) -> None:
        handle = json.loads(json.dumps(target.handle()))  # as the runner passes it: through the environment
        view = type(target).attach(target.config, handle)
        assert view.run(["echo", "attached"], timeout=60).stdout == "attached\n"
        view.stop()
        view.stop()
        assert target.run(["echo", "owner"], timeout=60).stdout == "owner\n"

    def test_start_again_is_a_no_op(self, target: Target) -> None:
        target.start()
        assert target.run(["echo", "still"], timeout=60).stdout == "still\n"

    def test_zz_stop_twice_is_quiet_and_prompt(self, target: Target) -> None:
        start = time.monotonic()
        target.stop()
        target.stop()  # raises nothing, waits on nothing: the first one released it all
        assert time.monotonic() - start < 120


def _ask(host: str, port: int, message: bytes, deadline: float) -> bytes:
    """Send ``message`` to a server through a forwarded port; retried while the path comes up."""
    errors: list[OSError] = []
    while True:
        try:
            with socket.create_connection((host, port), timeout=30) as s:
                s.sendall(message)
                answer = s.recv(64)
            if answer:
                return answer
        except OSError as e:
            errors.append(e)
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer from {host}:{port}: {errors[-3:]}")
        time.sleep(0.5)
