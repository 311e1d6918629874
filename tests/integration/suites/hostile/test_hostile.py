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


def test_forged_results_lines():
    """Write straight into the results file: numbers no float holds, NaN metrics, facts of the wrong types."""
    big = "1" + "0" * 400
    case = '{"event": "case", "status": "passed", "name": "test_hostile.py::forged_'
    lines = [
        case + 'big_int_duration", "duration": ' + big + "}",
        case + 'inf_duration", "duration": 1e999}',
        case + 'metrics", "duration": 0.1, "metrics": {"nan_ms": NaN, "inf_ms": Infinity, "ninf_ms": -Infinity, '
        '"big": ' + big + ', "ok_ms": 1.5}}',
        '{"event": "facts", "facts": {"arch": ["riscv64"], "isa": 5, "packages": [1], "extra": "x", "kernel": null}}',
        "[" * 100000,
    ]
    with open(os.environ["LEAPFROG_RESULTS"], "a", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
