"""Print what this machine is, as one JSON object (stdlib only; runs in a target).

Usage: python3 facts.py [PACKAGE ...]   versions of the named Python
distributions are included under "packages".

The ISA: under qemu-user a mounted /proc/cpuinfo describes the *host* CPU, so
on riscv64 the extensions come from inside the process: the ``riscv_hwprobe``
system call (258; Linux >= 6.4, QEMU >= 8.1 for qemu-user) gives the base
letters and the multi-letter extensions (zba, zbb, zicond, zvfh, ...) of the
key RISCV_HWPROBE_KEY_IMA_EXT_0; where it is missing (ENOSYS, as on QEMU 7.2)
AT_HWCAP in /proc/self/auxv gives the single letters only.  Without hwprobe,
the "isa" line of /proc/cpuinfo is used where it exists and describes a riscv
CPU (a VM or a board; QEMU >= 8 emulates it for the guest and it lists more,
so it is kept in ``extra["isa_cpuinfo"]``).  ``extra["isa_source"]`` says
which one answered.

On x86-64 the flags of /proc/cpuinfo give the level (x86-64-v2/v3/v4) and the
features that change numerical answers (``extra["x86_features"]``): AVX2 and
FMA (float kernels fuse multiply-add), AVX-512, and VNNI, without which int8
kernels multiply u8 by s8 with ``vpmaddubsw`` and saturate each pair's sum at
int16 (onnxruntime documents it; its ``reduce_range`` exists for it).  These
are read only when the target's own machine is x86-64: under qemu-user,
/proc/cpuinfo describes the host, not the emulated CPU.

What the AI stack does with vectors is in ``vector_facts.py``, shipped next to this
file as ``leapfrog_vector_facts.py`` (:func:`collect` starts its child first).
"""

from __future__ import annotations

import json
import os
import platform
import struct
import sys

try:  # on the host (tests): harness.probe.vector_facts
    from . import vector_facts as _vector
except ImportError:  # in the target: shipped next to this file (a script there, or leapfrog_facts)
    import leapfrog_vector_facts as _vector  # type: ignore[no-redef]

AT_HWCAP = 16
SYS_RISCV_HWPROBE = 258
HWPROBE_KEY_BASE_BEHAVIOR = 3
HWPROBE_BASE_BEHAVIOR_IMA = 1
HWPROBE_KEY_IMA_EXT_0 = 4
#: Bits of RISCV_HWPROBE_KEY_IMA_EXT_0, as the kernel's uapi <asm/hwprobe.h> numbers them.
HWPROBE_IMA_EXT_0 = (
    "fd", "c", "v", "zba", "zbb", "zbs", "zicboz", "zbc", "zbkb", "zbkc", "zbkx", "zknd", "zkne", "zknh",
    "zksed", "zksh", "zkt", "zvbb", "zvbc", "zvkb", "zvkg", "zvkned", "zvknha", "zvknhb", "zvksed", "zvksh",
    "zvkt", "zfh", "zfhmin", "zihintntl", "zvfh", "zvfhmin", "zfa", "ztso", "zacas", "zicond", "zihintpause",
    "zve32x", "zve32f", "zve64x", "zve64f", "zve64d", "zimop", "zca", "zcb", "zcd", "zcf", "zcmop", "zawrs",
    "supm", "zicntr", "zihpm", "zfbfmin", "zvfbfmin", "zvfbfwma", "zicbom", "zaamo", "zalrsc", "zabha",
)  # fmt: skip


def hwcap() -> int | None:
    try:
        with open("/proc/self/auxv", "rb") as f:
            data = f.read()
    except OSError:
        return None
    size = struct.calcsize("@L")
    for i in range(0, len(data) - 2 * size + 1, 2 * size):
        key, value = struct.unpack_from("@LL", data, i)
        if key == AT_HWCAP:
            return int(value)
        if key == 0:
            break
    return None


def cpuinfo_isa() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == "isa" and v.strip().startswith("rv"):
                    return v.strip()
    except OSError:
        pass
    return ""


#: x86 features that change numerical answers, in the order the report lists them.
X86_NUMERIC_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx")
#: Either gives int8 kernels an exact u8 x s8 dot product into int32 (vpdpbusd).
X86_VNNI = ("avx512_vnni", "avx_vnni")


def cpuinfo_field(text: str, name: str) -> str:
    """The value of the first ``name : value`` line of /proc/cpuinfo text ('' if none)."""
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep and k.strip() == name:
            return v.strip()
    return ""


def read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def x86_numerics(flags: set[str]) -> dict[str, str]:
    """What the flags say about numerics: one fact per feature ("amx" for any amx_*), then the int8 dot product."""
    present = flags | ({"amx"} if any(f.startswith("amx") for f in flags) else set())
    features = " ".join("%s=%s" % (n, "yes" if n in present else "no") for n in X86_NUMERIC_FEATURES)
    vnni = [n for n in X86_VNNI if n in flags]
    if vnni:
        dot = "VNNI (%s): u8 x s8 products summed exactly in int32" % ", ".join(vnni)
    else:
        dot = "no VNNI: u8 x s8 kernels sum pairs of products in int16 (vpmaddubsw), which saturates"
    return {"x86_features": features, "int8_dot_product": dot}


def os_release() -> dict[str, str]:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        out = {}
        for line in text.splitlines():
            k, sep, v = line.partition("=")
            if sep and k.strip() and not k.startswith("#"):
                out[k.strip()] = v.strip().strip('"').strip("'")
        return out
    return {}


def hwprobe() -> tuple[int, int] | None:
    """(BASE_BEHAVIOR, IMA_EXT_0) from the riscv_hwprobe system call, or None where it is missing.

    Only on riscv64: elsewhere 258 is another system call (mkdirat on x86-64).
    """
    if platform.machine() != "riscv64":
        return None
    try:
        import ctypes
    except ImportError:
        return None

    class Pair(ctypes.Structure):
        _fields_ = [("key", ctypes.c_int64), ("value", ctypes.c_uint64)]

    pairs = (Pair * 2)(Pair(HWPROBE_KEY_BASE_BEHAVIOR, 0), Pair(HWPROBE_KEY_IMA_EXT_0, 0))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.syscall(ctypes.c_long(SYS_RISCV_HWPROBE), pairs, ctypes.c_size_t(2), ctypes.c_size_t(0), None,
                          ctypes.c_uint(0))  # fmt: skip
    except (OSError, AttributeError):
        return None
    if rc != 0 or pairs[1].key != HWPROBE_KEY_IMA_EXT_0:
        return None
    return int(pairs[0].value), int(pairs[1].value)


def hwprobe_extensions(base: int, ext0: int) -> tuple[list[str], list[str]]:
    """(single letters, multi-letter extensions) that hwprobe's two values name."""
    letters = ["i", "m", "a"] if base & HWPROBE_BASE_BEHAVIOR_IMA else []
    multi = []
    for bit, name in enumerate(HWPROBE_IMA_EXT_0):
        if ext0 & (1 << bit):
            if name == "fd":
                letters += ["f", "d"]
            elif len(name) == 1:
                letters.append(name)
            else:
                multi.append(name)
    return letters, multi


def _order(letters: list[str]) -> list[str]:
    order = "imafdqcbkjtpvh"
    return [c for c in order if c in letters] + sorted(c for c in set(letters) if c not in order)


def riscv_isa() -> tuple[str, list[str], str]:
    """(isa string, single-letter + multi-letter extensions, where it came from).

    riscv_hwprobe first (the kernel's answer, what glibc, LLVM and OpenBLAS
    ask), then the "isa" line of /proc/cpuinfo (a VM or board whose kernel
    predates hwprobe), then AT_HWCAP (single letters only).
    """
    cap = hwcap()
    probed = hwprobe()
    if probed is not None:
        letters, multi = hwprobe_extensions(*probed)
        if cap is not None:
            letters += [chr(ord("a") + i) for i in range(26) if cap & (1 << i)]
        ordered = _order(letters)
        return "_".join(["rv64" + "".join(ordered), *multi]), ordered + multi, "hwprobe"
    line = cpuinfo_isa()
    if line:
        base, *multi = line.split("_")
        letters = list(base[4:]) if base.startswith("rv") else []
        return line, letters + multi, "cpuinfo"
    if cap is None:
        return "", [], ""
    ordered = _order([chr(ord("a") + i) for i in range(26) if cap & (1 << i)])
    return "rv64" + "".join(ordered), ordered, "hwcap"


def package_versions(names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - python < 3.8
        return out
    for name in names:
        try:
            out[name] = metadata.version(name)
        except Exception:
            out[name] = ""
    return out


def collect(packages: list[str]) -> dict[str, object]:
    vector_child = _vector.start_vector_facts()
    arch = platform.machine()
    osr = os_release()
    isa, source = "", ""
    extensions: list[str] = []
    cpu: dict[str, str] = {}
    if arch.startswith("riscv"):
        isa, extensions, source = riscv_isa()
        if cpuinfo_isa():  # the whole list (QEMU >= 8 emulates it for the guest; a kernel lists it)
            cpu["isa_cpuinfo"] = cpuinfo_isa()
    elif arch in ("x86_64", "AMD64"):
        text = read_cpuinfo()
        flags = set(cpuinfo_field(text, "flags").split())
        cpu = {"cpu_model_name": cpuinfo_field(text, "model name"), **x86_numerics(flags)}
        level = "x86-64"
        if {"cx16", "lahf_lm", "popcnt", "sse4_1", "sse4_2", "ssse3"} <= flags:
            level = "x86-64-v2"
        if level == "x86-64-v2" and {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"} <= flags:
            level = "x86-64-v3"
        if level == "x86-64-v3" and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags:
            level = "x86-64-v4"
        isa = level
        extensions = sorted(f for f in flags if f.startswith(("avx", "sse", "fma", "amx")))
        source = "cpuinfo"
    libc = " ".join(x for x in platform.libc_ver() if x)
    return {
        "arch": arch,
        "isa": isa,
        "extensions": extensions,
        "os_id": osr.get("ID", ""),
        "os_name": osr.get("PRETTY_NAME", osr.get("NAME", "")),
        "os_version": osr.get("VERSION_ID", ""),
        "kernel": platform.release(),
        "libc": libc,
        "python": platform.python_version(),
        "packages": package_versions(packages),
        "extra": {
            "isa_source": source,
            "byteorder": sys.byteorder,
            "pointer_bits": str(struct.calcsize("P") * 8),
            "page_size": str(os.sysconf("SC_PAGE_SIZE")) if hasattr(os, "sysconf") else "",
            "cpu_count": str(os.cpu_count() or ""),
            "os_release_version": osr.get("VERSION", ""),
            **cpu,
            **_vector.finish_vector_facts(vector_child),
        },
    }


if __name__ == "__main__":
    json.dump(collect(sys.argv[1:]), sys.stdout)
    sys.stdout.write("\n")
