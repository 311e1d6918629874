"""The interpreter of a private binfmt entry: a tiny static program that runs qemu-user with ``-cpu`` set.

qemu-user reads its CPU model from ``-cpu`` or from ``QEMU_CPU``.  A binfmt
entry gives the interpreter no arguments, so with qemu itself as the
interpreter the model can travel only in the environment, and a child started
with an emptied one (``subprocess.run(..., env={})``, some pytest worker
launchers) silently ran on QEMU's default ``max`` CPU.  This program closes
that gap: registered with flags ``PF`` it is started as::

    WRAPPER FILENAME ARGV0 ARGS...

and replaces itself (``execve``, the environment passed on untouched) with::

    QEMU [-cpu MODEL] -0 ARGV0 FILENAME ARGS...

so every riscv64 program in the target runs on the CPU model its file names,
whatever its environment holds.  ``QEMU`` is a path inside the target's root
(:mod:`harness.qemu_enter` binds the cached qemu there read-only); the wrapper
itself is opened by the kernel when the entry is registered (flag ``F``) and
needs no copy in the root.  No ``O``/``C`` flag: qemu opens the program by its
name (the kernel's descriptor would not survive the second ``execve``).

No compiler is needed: the program is 136 bytes of x86-64 machine code written
here (the assembly is beside each instruction), with the paths and model
baked in as data.  A host of another architecture gets a TargetError naming
the gap, never a run on the wrong CPU.
"""

from __future__ import annotations

import hashlib
import os
import platform
import struct
from pathlib import Path

from harness.errors import TargetError

#: Where the cached qemu's folder is bound inside the target's root.
INSIDE = "/usr/libexec/leapfrog-qemu"
BASE = 0x400000  # where the one PT_LOAD segment is mapped
HEADERS = 64 + 56  # ELF header + one program header: the code starts here
CODE_LEN = 0x88  # the instructions below, 136 bytes
MESSAGE = "leapfrog: the qemu-user wrapper could not run {qemu}\n"


def i32(value: int) -> bytes:
    """A 32-bit immediate, little-endian."""
    return struct.pack("<I", value)


def _x86_64(table: int, count: int, message: int, message_len: int) -> bytes:
    """The program: ``table`` holds ``count`` pointers (qemu, its options, then "-0"); ``message`` is the error."""
    code = b"".join(
        [
            b"\x48\x8b\x1c\x24",  # mov rbx, [rsp]            argc
            b"\x4c\x8d\x64\x24\x08",  # lea r12, [rsp+8]          argv
            b"\x4d\x8d\x6c\xdc\x08",  # lea r13, [r12+rbx*8+8]    envp
            b"\x48\x83\xfb\x03",  # cmp rbx, 3                WRAPPER FILENAME ARGV0 at least
            b"\x72\x52",  # jb fail
            b"\x48\x8d\x43" + bytes([count]),  # lea rax, [rbx+count]      words of the new argv
            b"\x48\xc1\xe0\x03",  # shl rax, 3
            b"\x48\x29\xc4",  # sub rsp, rax
            b"\x48\x83\xe4\xf0",  # and rsp, -16
            b"\x48\x89\xe7",  # mov rdi, rsp
            b"\xbe" + i32(table),  # mov esi, table
            b"\xb9" + i32(count),  # mov ecx, count
            b"\xf3\x48\xa5",  # rep movsq                 qemu [-cpu MODEL] -0
            b"\x49\x8b\x44\x24\x10",  # mov rax, [r12+16]
            b"\x48\xab",  # stosq                     ARGV0
            b"\x49\x8b\x44\x24\x08",  # mov rax, [r12+8]
            b"\x48\xab",  # stosq                     FILENAME
            b"\x49\x8d\x74\x24\x18",  # lea rsi, [r12+24]
            b"\x48\x8d\x4b\xfd",  # lea rcx, [rbx-3]
            b"\xf3\x48\xa5",  # rep movsq                 ARGS...
            b"\x31\xc0",  # xor eax, eax
            b"\x48\xab",  # stosq                     NULL
            b"\xbe" + i32(table),  # mov esi, table
            b"\x48\x8b\x3e",  # mov rdi, [rsi]            the qemu path
            b"\x48\x89\xe6",  # mov rsi, rsp
            b"\x4c\x89\xea",  # mov rdx, r13
            b"\xb8\x3b\x00\x00\x00",  # mov eax, 59 (execve)
            b"\x0f\x05",  # syscall
            # fail:
            b"\xbf\x02\x00\x00\x00",  # mov edi, 2
            b"\xbe" + i32(message),  # mov esi, message
            b"\xba" + i32(message_len),  # mov edx, len
            b"\xb8\x01\x00\x00\x00",  # mov eax, 1 (write)
            b"\x0f\x05",  # syscall
            b"\xbf\x7f\x00\x00\x00",  # mov edi, 127
            b"\xb8\xe7\x00\x00\x00",  # mov eax, 231 (exit_group)
            b"\x0f\x05",  # syscall
        ]
    )
    assert len(code) == CODE_LEN, "jb fail (+0x52 from 0x14) must land on the write at 0x66"
    return code


def program(qemu: str, cpu: str, machine: str | None = None) -> bytes:
    """The wrapper for ``machine`` (default: this host) that runs ``qemu`` with ``-cpu cpu`` ("" omits it)."""
    machine = machine or platform.machine()
    if machine != "x86_64":
        raise TargetError(
            f"leapfrog's qemu-user wrapper, which binds a profile target's CPU model for every process in it, "
            f"exists for x86_64 hosts only, and this host is {machine}; run profile targets "
            f'(qemu = "debian-trixie") on an x86_64 host.'
        )
    words = [qemu, *(["-cpu", cpu] if cpu else []), "-0"]
    data_at = HEADERS + CODE_LEN
    table_len = 8 * len(words)
    strings = b""
    pointers = []
    for w in words:
        pointers.append(BASE + data_at + table_len + len(strings))
        strings += w.encode() + b"\0"
    message = MESSAGE.format(qemu=qemu).encode()
    message_at = BASE + data_at + table_len + len(strings)
    code = _x86_64(BASE + data_at, len(words), message_at, len(message))
    body = code + struct.pack(f"<{len(pointers)}Q", *pointers) + strings + message
    size = HEADERS + len(body)
    ident = b"\x7fELF\x02\x01\x01" + b"\0" * 9  # 64-bit, little-endian, version 1, System V
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, BASE + HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, size, size, 0x1000)  # PT_LOAD, R+X
    return header + segment + body


def write(folder: Path, qemu: str, cpu: str) -> Path:
    """The wrapper for ``cpu`` in ``folder`` (made once, atomically; named by what it holds)."""
    blob = program(qemu, cpu)
    path = folder / f"qemu-cpu-{hashlib.sha256(blob).hexdigest()[:16]}"
    if path.is_file() and path.read_bytes() == blob:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{os.getpid()}"
    tmp.write_bytes(blob)
    tmp.chmod(0o755)
    tmp.replace(path)
    return path
