"""ctypes calls into libc (plain, callbacks, varargs) and struct layouts."""

from __future__ import annotations

import ctypes
import struct
from typing import Any

import pytest


def test_strlen_and_memchr(libc: ctypes.CDLL, cfunc: Any) -> None:
    strlen = cfunc(libc, "strlen", ctypes.c_size_t, ctypes.c_char_p)
    assert strlen(b"hello\0world") == 5
    assert strlen(b"") == 0
    big = b"x" * 1_000_000
    assert strlen(big) == 1_000_000
    memchr = cfunc(libc, "memchr", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
    buf = ctypes.create_string_buffer(b"abcdef\xffz")
    base = ctypes.addressof(buf)
    assert memchr(buf, ord("d"), 8) - base == 3
    assert memchr(buf, 0xFF, 8) - base == 6  # the int argument is converted to unsigned char
    assert memchr(buf, ord("q"), 8) is None


def test_qsort_with_callback(libc: ctypes.CDLL, cfunc: Any, metrics: dict[str, Any]) -> None:
    compare_t = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64))
    qsort = cfunc(libc, "qsort", None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, compare_t)
    calls = 0

    def compare(a: Any, b: Any) -> int:
        nonlocal calls
        calls += 1
        x, y = a[0], b[0]
        return (x > y) - (x < y)

    state = 12345
    values = []
    for _ in range(300):  # deterministic LCG, includes negatives and 64-bit values
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        values.append(state - 2**63)
    array = (ctypes.c_int64 * len(values))(*values)
    qsort(array, len(array), ctypes.sizeof(ctypes.c_int64), compare_t(compare))
    assert list(array) == sorted(values)
    assert calls >= len(values) - 1
    metrics["qsort_callbacks"] = calls


def test_snprintf_varargs(arch: str, libc: ctypes.CDLL, cfunc: Any, metrics: dict[str, Any]) -> None:
    # Declaring only the fixed arguments makes ctypes use ffi_prep_cif_var, which
    # is what the RISC-V calling convention needs (variadic doubles go in integer
    # registers there, unlike fixed ones).
    snprintf = cfunc(libc, "snprintf", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p)
    buf = ctypes.create_string_buffer(128)
    n = snprintf(
        buf,
        len(buf),
        b"%d|%s|%.3f|%ld|%c|%x|%.2e",
        ctypes.c_int(-42),
        b"riscv",
        ctypes.c_double(3.14159),
        ctypes.c_long(-(2**40)),
        ctypes.c_int(ord("x")),
        ctypes.c_uint(0xBEEF),
        ctypes.c_double(6.02214076e23),
    )  # varargs must be promoted types: libffi rejects c_char/c_float here
    expected = b"-42|riscv|3.142|-1099511627776|x|beef|6.02e+23"
    assert buf.value == expected
    assert n == len(expected)
    # Truncation: return value is the length that would have been written.
    small = ctypes.create_string_buffer(4)
    assert snprintf(small, len(small), b"%s", b"truncated") == 9
    assert small.value == b"tru"

    # Without argtypes ctypes prepares a non-variadic call. That happens to work
    # for doubles on x86-64 but not under the RISC-V psABI; record which.
    undeclared = libc["snprintf"]
    undeclared.restype = ctypes.c_int
    out = ctypes.create_string_buffer(64)
    undeclared(out, ctypes.c_size_t(len(out)), b"%.1f", ctypes.c_double(2.5))
    metrics["snprintf_undeclared_double"] = out.value.decode("ascii", "replace")
    metrics["snprintf_undeclared_double_ok"] = out.value == b"2.5"
    if arch == "x86_64":
        assert out.value == b"2.5"


def test_ctypes_structure_layout(metrics: dict[str, Any]) -> None:
    class Mixed(ctypes.Structure):
        _fields_ = [("c", ctypes.c_char), ("d", ctypes.c_double), ("s", ctypes.c_short), ("i", ctypes.c_int)]

    class Packed(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("c", ctypes.c_char), ("d", ctypes.c_double)]

    class Bits(ctypes.Structure):
        _fields_ = [("a", ctypes.c_uint32, 3), ("b", ctypes.c_uint32, 29)]

    assert ctypes.sizeof(Mixed) == 24
    assert (Mixed.c.offset, Mixed.d.offset, Mixed.s.offset, Mixed.i.offset) == (0, 8, 16, 20)
    assert ctypes.sizeof(Packed) == 9
    assert Packed.d.offset == 1
    assert ctypes.alignment(ctypes.c_double) == ctypes.alignment(ctypes.c_int64) == 8
    bits_value = Bits(5, 7)
    assert ctypes.sizeof(Bits) == 4
    assert struct.unpack("<I", bytes(bits_value))[0] == 5 | 7 << 3
    metrics["longdouble_alignment"] = ctypes.alignment(ctypes.c_longdouble)
    assert ctypes.alignment(ctypes.c_longdouble) == 16


def test_struct_module(metrics: dict[str, Any]) -> None:
    assert struct.calcsize("@cd") == 16
    assert struct.calcsize("=cd") == 9
    assert struct.calcsize("@ci") == 8
    assert struct.calcsize("@cq") == 16
    assert struct.pack(">hHiq", -2, 65535, -1, 2**40) == (
        b"\xff\xfe\xff\xff\xff\xff\xff\xff\x00\x00\x01\x00\x00\x00\x00\x00"
    )
    assert struct.unpack("<q", b"\xff" * 8) == (-1,)
    assert struct.pack("<e", 1.5) == b"\x00\x3e"  # IEEE half precision
    assert struct.unpack("<e", b"\x00\x7c")[0] == float("inf")
    with pytest.raises(OverflowError):
        struct.pack("<e", 1e6)
    assert struct.pack("<f", 0.1) == b"\xcd\xcc\xcc\x3d"
    assert struct.pack("<d", 0.1) == bytes.fromhex("9a9999999999b93f")
    assert struct.unpack("?", b"\x02") == (True,)
    with pytest.raises(struct.error):
        struct.pack("<B", 256)
    records = list(struct.iter_unpack("<HH", bytes(range(8))))
    assert records == [(0x0100, 0x0302), (0x0504, 0x0706)]
    metrics["struct_native_cd_size"] = struct.calcsize("@cd")
