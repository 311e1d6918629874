"""A suite that attacks the harness: every case must still get the right status."""

import ctypes
import os
import signal
import sys
import time

import pytest


def test_before(metrics):
    metrics["ok"] = 1


def test_segfault():
    ctypes.string_at(0)


def test_illegal_instruction():
    os.kill(os.getpid(), signal.SIGILL)


def test_os_exit():
    os._exit(3)


def test_hang():
    time.sleep(600)


def test_flood():
    chunk = "y" * (1 << 20)
    for _ in range(20):
        sys.stdout.write(chunk)


def test_invalid_utf8():
    sys.stdout.buffer.write(b"\xff\xfe\xc3(" * 100)
    sys.stdout.flush()
    assert False, "bad bytes \udcff"


@pytest.mark.parametrize("evil", ["<script>window.__pwned=1</script>", "]]><x/>", "\x1b[31m\x00"])
def test_injection_in_names(evil):
    assert evil == "", f"message with {evil}"


def test_after(metrics):
    metrics["still_running"] = True
