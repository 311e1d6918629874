"""facts.py's riscv64 ISA: riscv_hwprobe first, then the "isa" line of /proc/cpuinfo, then AT_HWCAP.

The hwprobe values are the ones QEMU 10 answered for ``-cpu rva23u64`` and
``rva22u64`` on the machine these tests were written on.
"""

from __future__ import annotations

import pytest

import harness.probe.facts as facts_mod

IMA = 1
RVA23_EXT0 = sum(
    1 << facts_mod.HWPROBE_IMA_EXT_0.index(n)
    for n in ("fd", "c", "v", "zba", "zbb", "zbs", "zicboz", "zkt", "zvbb", "zvkb", "zvkt", "zfhmin", "zihintntl")
) | sum(1 << facts_mod.HWPROBE_IMA_EXT_0.index(n) for n in ("zvfhmin", "zfa", "zicond"))
RVA22_EXT0 = sum(
    1 << facts_mod.HWPROBE_IMA_EXT_0.index(n) for n in ("fd", "c", "zba", "zbb", "zbs", "zicboz", "zkt", "zfhmin")
)
HWCAP_IMAFDC = sum(1 << (ord(c) - ord("a")) for c in "imafdc")


def test_hwprobe_bits_follow_the_kernel_uapi_numbering() -> None:
    names = facts_mod.HWPROBE_IMA_EXT_0
    assert names[:6] == ("fd", "c", "v", "zba", "zbb", "zbs")
    assert names.index("zfh") == 27
    assert names.index("zvfh") == 30
    assert names.index("zicond") == 35
    assert names.index("zve64d") == 41
    assert names.index("zawrs") == 48
    assert names.index("zaamo") == 56
    assert len(set(names)) == len(names)


def test_hwprobe_values_become_letters_and_extensions() -> None:
    letters, multi = facts_mod.hwprobe_extensions(IMA, RVA23_EXT0)
    assert letters == ["i", "m", "a", "f", "d", "c", "v"]
    assert {"zba", "zbb", "zbs", "zicond", "zfa", "zvfhmin"} <= set(multi)
    letters, multi = facts_mod.hwprobe_extensions(IMA, RVA22_EXT0)
    assert "v" not in letters
    assert "zicond" not in multi
    assert {"zba", "zbb", "zbs"} <= set(multi)


def test_the_isa_comes_from_hwprobe_when_the_system_call_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facts_mod, "hwprobe", lambda: (IMA, RVA23_EXT0))
    monkeypatch.setattr(facts_mod, "hwcap", lambda: HWCAP_IMAFDC | (1 << 21))
    monkeypatch.setattr(facts_mod, "cpuinfo_isa", lambda: "rv64imafdcbv_zicond_zfhmin_whatever")
    isa, exts, source = facts_mod.riscv_isa()
    assert source == "hwprobe"
    assert isa.startswith("rv64imafdcv_")
    assert exts.count("v") == 1
    assert {"zba", "zbb", "zicond", "v"} <= set(exts)
    assert "whatever" not in exts


def test_without_hwprobe_a_cpuinfo_isa_line_then_hwcap_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """QEMU 7.2 has no riscv_hwprobe (ENOSYS) and no riscv /proc/cpuinfo: only AT_HWCAP's letters remain."""
    monkeypatch.setattr(facts_mod, "hwprobe", lambda: None)
    monkeypatch.setattr(facts_mod, "hwcap", lambda: HWCAP_IMAFDC)
    monkeypatch.setattr(facts_mod, "cpuinfo_isa", lambda: "rv64imafdc_zba_zbb")
    assert facts_mod.riscv_isa() == ("rv64imafdc_zba_zbb", ["i", "m", "a", "f", "d", "c", "zba", "zbb"], "cpuinfo")
    monkeypatch.setattr(facts_mod, "cpuinfo_isa", lambda: "")
    assert facts_mod.riscv_isa() == ("rv64imafdc", ["i", "m", "a", "f", "d", "c"], "hwcap")


def test_the_cpuinfo_isa_line_is_kept_beside_the_hwprobe_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facts_mod.platform, "machine", lambda: "riscv64")
    monkeypatch.setattr(facts_mod, "hwprobe", lambda: (IMA, RVA22_EXT0))
    monkeypatch.setattr(facts_mod, "hwcap", lambda: HWCAP_IMAFDC)
    monkeypatch.setattr(facts_mod, "cpuinfo_isa", lambda: "rv64imafdcb_zba_zbb_zbs_zfhmin")
    got = facts_mod.collect([])
    extra = got["extra"]
    assert isinstance(extra, dict)
    assert extra["isa_source"] == "hwprobe"
    assert extra["isa_cpuinfo"] == "rv64imafdcb_zba_zbb_zbs_zfhmin"
    assert got["isa"] == "rv64imafdc_zba_zbb_zbs_zicboz_zkt_zfhmin"


def test_hwprobe_is_never_called_off_riscv64(monkeypatch: pytest.MonkeyPatch) -> None:
    """On x86-64 the system call number 258 is mkdirat: facts.py must not make it there."""
    import ctypes

    def no_libc(*_a: object, **_k: object) -> None:
        raise AssertionError("ctypes.CDLL opened off riscv64")

    monkeypatch.setattr(facts_mod.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert facts_mod.hwprobe() is None
