"""Each case is built for one triage class when the suite runs on native and a riscv64 qemu-user chroot.

Stdlib only: the suite installs nothing beyond the shared Debian image.
"""

import ctypes
import os
import platform

RISCV = platform.machine() == "riscv64"
#: riscv_hwprobe(2), Linux 6.4+, asm-generic syscall number on riscv64.
SYS_RISCV_HWPROBE = 258
#: RISCV_HWPROBE_KEY_IMA_EXT_0: which of the base extensions are there.
KEY_IMA_EXT_0 = 4


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def test_reference_work():
    """Passes everywhere: the cell's slowdown is measured on it (about 0.05 s natively, 0.5 s under qemu-user)."""
    assert spin(1_000_000) > 0


def test_assumes_x86():
    """target-only: a check that holds only on x86-64."""
    machine = platform.machine()
    assert machine in ("x86_64", "AMD64"), f"this check assumes an x86-64 machine, found {machine}"


def test_fails_everywhere():
    """everywhere: wrong on every architecture."""
    assert 0.1 + 0.2 == 0.3


def test_cpu_loop():
    """slow: about 0.75 s natively, about 7 s under qemu-user: past the 3 s case timeout."""
    assert spin(15_000_000) > 0


class _Pair(ctypes.Structure):
    _fields_ = [("key", ctypes.c_int64), ("value", ctypes.c_uint64)]


def test_kernel_reports_isa_extensions():
    """emulator-suspect: riscv_hwprobe works on riscv64 Linux 6.4+; qemu-user 7.2 answers ENOSYS.

    On x86-64 the kernel's answer is the flags line of /proc/cpuinfo.
    """
    if not RISCV:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = [line for line in f if line.startswith("flags")]
        assert flags
        assert "sse2" in flags[0].split()
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    pairs = (_Pair * 1)()
    pairs[0].key = KEY_IMA_EXT_0
    got = libc.syscall(
        ctypes.c_long(SYS_RISCV_HWPROBE), pairs, ctypes.c_size_t(1), ctypes.c_size_t(0), None, ctypes.c_uint(0)
    )
    if got != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "riscv_hwprobe")
    assert pairs[0].key == KEY_IMA_EXT_0
    assert pairs[0].value & 1, "the kernel says the IMA base is missing"


def test_expects_riscv64():
    """baseline-only: holds only on riscv64, so it fails on the native baseline."""
    machine = platform.machine()
    assert RISCV, f"this check expects a riscv64 machine, found {machine}"
