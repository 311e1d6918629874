"""Architecture facts: machine, ISA (AT_HWCAP), byte order, word and page size."""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import resource
import signal
import struct
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

import pytest

KNOWN_MACHINES = {"x86_64", "riscv64", "aarch64", "ppc64le", "s390x", "loongarch64"}
AT_PAGESZ = 6
AT_HWCAP = 16
AT_HWCAP2 = 26


def _auxv() -> dict[int, int]:
    """Parse /proc/self/auxv: pairs of native unsigned longs, ended by AT_NULL."""
    data = Path("/proc/self/auxv").read_bytes()
    entries: dict[int, int] = {}
    for key, value in struct.iter_unpack("@LL", data[: len(data) // 16 * 16]):
        if key == 0:
            break
        entries[key] = value
    return entries


CANONICAL_ORDER = "iemafdqlcbkjtpvnh"  # ISA-string order from the RISC-V unprivileged spec


def _riscv_letters(hwcap: int) -> str:
    """Single-letter extensions from AT_HWCAP (bit i = letter 'a' + i), in ISA-string order."""
    letters = [chr(ord("a") + i) for i in range(26) if hwcap >> i & 1]
    return "".join(sorted(letters, key=lambda c: (c not in CANONICAL_ORDER, CANONICAL_ORDER.find(c), c)))


def test_machine_and_build(arch: str, metrics: dict[str, Any]) -> None:
    uname = os.uname()
    metrics["machine"] = arch
    metrics["kernel_release"] = uname.release
    metrics["python_version"] = platform.python_version()
    metrics["python_implementation"] = platform.python_implementation()
    libc_name, libc_version = platform.libc_ver()
    metrics["libc"] = f"{libc_name} {libc_version}".strip()
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    metrics["multiarch"] = multiarch
    assert arch in KNOWN_MACHINES, f"unexpected machine {arch!r}"
    assert uname.sysname == "Linux"
    assert uname.machine.lower() in (arch, "amd64", "arm64")
    if multiarch:  # Debian-style builds; the triplet must name this machine
        assert multiarch.split("-")[0] in (arch, "aarch64"), multiarch
    assert libc_name == "glibc", "the suite's libm expectations assume glibc"


def test_byte_order(metrics: dict[str, Any]) -> None:
    metrics["byteorder"] = sys.byteorder
    native = struct.pack("=I", 0x01020304)
    assert native == (0x01020304).to_bytes(4, sys.byteorder)
    assert struct.pack("<I", 1) == b"\x01\x00\x00\x00"
    assert struct.pack(">I", 1) == b"\x00\x00\x00\x01"
    assert int.from_bytes(bytes(ctypes.c_uint32(0x01020304)), sys.byteorder) == 0x01020304
    # x86-64 and riscv64 are both little-endian.
    assert sys.byteorder == "little"


def test_pointer_and_word_size(metrics: dict[str, Any]) -> None:
    metrics["pointer_bytes"] = struct.calcsize("P")
    metrics["long_bytes"] = ctypes.sizeof(ctypes.c_long)
    metrics["wchar_bytes"] = ctypes.sizeof(ctypes.c_wchar)
    metrics["int_bits_per_digit"] = sys.int_info.bits_per_digit
    assert struct.calcsize("P") == 8
    assert ctypes.sizeof(ctypes.c_void_p) == 8
    assert sys.maxsize == 2**63 - 1
    assert struct.calcsize("n") == struct.calcsize("N") == 8
    # LP64: int 32 bits, long and long long 64 bits.
    assert ctypes.sizeof(ctypes.c_int) == 4
    assert ctypes.sizeof(ctypes.c_long) == ctypes.sizeof(ctypes.c_longlong) == 8
    assert ctypes.sizeof(ctypes.c_wchar) == 4  # wchar_t is 32-bit on Linux


def test_page_size(metrics: dict[str, Any]) -> None:
    page = mmap.PAGESIZE
    metrics["page_size"] = page
    metrics["allocation_granularity"] = mmap.ALLOCATIONGRANULARITY
    assert page == os.sysconf("SC_PAGE_SIZE") == resource.getpagesize()
    assert page >= 4096
    assert page & (page - 1) == 0
    aux = _auxv()
    if AT_PAGESZ in aux:
        assert aux[AT_PAGESZ] == page


def test_hwcap_and_isa(arch: str, libc: ctypes.CDLL, cfunc: Any, metrics: dict[str, Any]) -> None:
    getauxval = cfunc(libc, "getauxval", ctypes.c_ulong, ctypes.c_ulong)
    aux = _auxv()
    hwcap = aux.get(AT_HWCAP, 0)
    metrics["hwcap_hex"] = f"{hwcap:#x}"
    metrics["getauxval_hwcap_hex"] = f"{getauxval(AT_HWCAP):#x}"
    if arch != "x86_64":
        # glibc on x86-64 replaces dl_hwcap with its own HWCAP_X86_* bits, so
        # getauxval(AT_HWCAP) differs from the kernel's value there only.
        assert getauxval(AT_HWCAP) == hwcap, "libc getauxval and /proc/self/auxv disagree"
    metrics["hwcap2_hex"] = f"{getauxval(AT_HWCAP2):#x}"
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    isa_lines = [
        line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.split(":", 1)[0].strip() == "isa"
    ]
    if arch == "riscv64":
        letters = _riscv_letters(hwcap)
        metrics["isa"] = "rv64" + letters
        metrics["isa_has_v"] = "v" in letters
        metrics["isa_has_h"] = "h" in letters
        # Debian's riscv64 port requires RV64GC = rv64imafdc (+ zicsr/zifencei).
        assert set("imafdc") <= set(letters), f"not RV64GC: rv64{letters}"
        # In a VM or on a board /proc/cpuinfo has an isa line; under qemu-user it
        # describes the host CPU and must not be trusted.
        metrics["cpuinfo_has_isa"] = bool(isa_lines)
        if isa_lines:
            metrics["cpuinfo_isa"] = isa_lines[0][:200]
            base = isa_lines[0].split("_")[0].lower()
            assert base.startswith("rv64"), isa_lines[0]
            assert set(letters) <= set(base[4:]), (letters, isa_lines[0])
    elif arch == "x86_64":
        flags = next(
            (line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")),
            [],
        )
        metrics["x86_avx2"] = "avx2" in flags
        metrics["x86_avx512f"] = "avx512f" in flags
        # AT_HWCAP on x86-64 is CPUID.1:EDX; bit 25 = SSE, bit 26 = SSE2 (baseline).
        assert hwcap >> 25 & 1
        assert hwcap >> 26 & 1
        assert "sse2" in flags
    else:
        assert hwcap != 0


VECTOR_PROBE = textwrap.dedent(
    """
    import ctypes, mmap
    code = bytes.fromhex("732520c2" "67800000")  # csrr a0, vlenb ; ret
    buf = mmap.mmap(-1, mmap.PAGESIZE,
                    prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None)
    libc.syscall(259, ctypes.c_void_p(addr), ctypes.c_void_p(addr + len(code)), 0)  # riscv_flush_icache
    print(ctypes.CFUNCTYPE(ctypes.c_long)(addr)())
    """
)


def test_riscv_vector_probe(arch: str, metrics: dict[str, Any]) -> None:
    """Execute `csrr vlenb` in a child: the real answer to "is V usable here"."""
    if arch != "riscv64":
        pytest.skip(f"the vector CSR probe is RISC-V machine code; this is {arch}")
    hwcap = _auxv().get(AT_HWCAP, 0)
    proc = subprocess.run([sys.executable, "-c", VECTOR_PROBE], capture_output=True, text=True, timeout=60)
    metrics["vector_probe_returncode"] = proc.returncode
    qemu_cpu = os.environ.get("QEMU_CPU", "")
    if qemu_cpu:
        metrics["qemu_cpu"] = qemu_cpu
    if proc.returncode == 0:
        vlenb = int(proc.stdout.strip())
        metrics["vlen_bits"] = vlenb * 8
        assert vlenb >= 16, vlenb  # V 1.0 application processors: VLEN >= 128
        assert vlenb & (vlenb - 1) == 0, vlenb
        if "vlen=" in qemu_cpu:
            requested = int(qemu_cpu.split("vlen=", 1)[1].split(",")[0])
            assert vlenb * 8 == requested
    else:
        assert proc.returncode == -signal.SIGILL, proc.stderr[-2000:]
        metrics["vlen_bits"] = 0
        assert not hwcap >> (ord("v") - ord("a")) & 1, "hwcap advertises V but vlenb traps"
        assert "v=true" not in qemu_cpu, "QEMU_CPU asked for V but vlenb traps"


def test_cpu_count(metrics: dict[str, Any]) -> None:
    count = os.cpu_count()
    assert count is not None
    assert count >= 1
    affinity = os.sched_getaffinity(0)
    metrics["cpu_count"] = count
    metrics["affinity_cpus"] = len(affinity)
    assert 1 <= len(affinity) <= count
    if hasattr(os, "process_cpu_count"):  # 3.13+
        metrics["process_cpu_count"] = os.process_cpu_count() or 0
        assert os.process_cpu_count() == len(affinity)


def test_long_double_format(arch: str, libc: ctypes.CDLL, cfunc: Any, metrics: dict[str, Any]) -> None:
    """x86-64 long double is the 80-bit x87 format; riscv64 is IEEE binary128."""

    class LongDouble(ctypes.c_longdouble):
        """A subclass, so ctypes hands back the raw value instead of a float."""

    strtold = cfunc(libc, "strtold", LongDouble, ctypes.c_char_p, ctypes.c_void_p)
    strfroml = cfunc(
        libc,
        "strfroml",
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        LongDouble,
    )

    def fmt(value: LongDouble) -> str:
        buf = ctypes.create_string_buffer(128)
        assert strfroml(buf, len(buf), b"%a", value) > 0
        return buf.value.decode()

    one = fmt(strtold(b"1", None))
    # Largest k for which 1 + 2**-k is still distinct from 1 is LDBL_MANT_DIG - 1.
    mant_dig = 1
    for k in range(1, 130):
        if fmt(strtold(f"0x{(1 << k) + 1:x}p-{k}".encode(), None)) == one:
            break
        mant_dig = k + 1
    metrics["long_double_bytes"] = ctypes.sizeof(ctypes.c_longdouble)
    metrics["long_double_mant_dig"] = mant_dig
    expected = {"x86_64": 64, "riscv64": 113, "aarch64": 113}
    if arch in expected:
        assert mant_dig == expected[arch]
    else:
        assert mant_dig in (53, 64, 106, 113)
    assert ctypes.sizeof(ctypes.c_longdouble) == 16
