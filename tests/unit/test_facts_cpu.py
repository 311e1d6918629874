"""The CPU features that change numerical answers: facts.py's record and the int8 decision of the suites.

cpuinfo texts in ``data/cpuinfo``: ``amd-epyc-zen5-vnni.txt`` is the first
processor of the machine these tests were written on; ``amd-epyc-zen2-avx2.txt``
is the flag set of an EPYC 7742 (AVX2, no AVX-512, no VNNI: the host of issue 11);
``intel-xeon-spr-amx.txt`` keeps only the flags that matter of a Sapphire Rapids.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import harness.probe.facts as facts_mod
from harness.probe import leapfrog_suite

CPUINFO = Path(__file__).parent / "data" / "cpuinfo"


def cpuinfo(name: str) -> str:
    return (CPUINFO / f"{name}.txt").read_text(encoding="utf-8")


def x86_facts(monkeypatch: pytest.MonkeyPatch, name: str, machine: str = "x86_64") -> dict[str, str]:
    monkeypatch.setattr(facts_mod.platform, "machine", lambda: machine)
    monkeypatch.setattr(facts_mod, "read_cpuinfo", lambda: cpuinfo(name))
    monkeypatch.setattr(facts_mod, "riscv_isa", lambda: ("rv64gc", ["i", "m", "a", "f", "d", "c"], "hwcap"))
    extra = facts_mod.collect([])["extra"]
    assert isinstance(extra, dict)
    return extra


def test_an_avx2_host_without_vnni_is_recorded_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = x86_facts(monkeypatch, "amd-epyc-zen2-avx2")
    assert extra["cpu_model_name"] == "AMD EPYC 7742 64-Core Processor"
    assert extra["x86_features"] == ("avx2=yes fma=yes avx512f=no avx512_vnni=no avx_vnni=no avx512_bf16=no amx=no")
    assert extra["int8_dot_product"].startswith("no VNNI: ")
    assert "saturates" in extra["int8_dot_product"]


def test_a_vnni_host_is_recorded_with_its_vnni_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = x86_facts(monkeypatch, "amd-epyc-zen5-vnni")
    assert extra["x86_features"] == ("avx2=yes fma=yes avx512f=yes avx512_vnni=yes avx_vnni=yes avx512_bf16=yes amx=no")
    assert extra["int8_dot_product"].startswith("VNNI (avx512_vnni, avx_vnni): ")


def test_any_amx_flag_counts_as_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = x86_facts(monkeypatch, "intel-xeon-spr-amx")
    assert extra["x86_features"].endswith("avx512_bf16=yes amx=yes")
    facts = facts_mod.collect([])
    assert facts["isa"] == "x86-64-v4"


def test_a_riscv_target_never_records_the_host_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under qemu-user /proc/cpuinfo is the x86 host's: a riscv64 target must not claim its flags."""
    extra = x86_facts(monkeypatch, "amd-epyc-zen5-vnni", machine="riscv64")
    assert not {"x86_features", "int8_dot_product", "cpu_model_name"} & set(extra)


def test_cpuinfo_flags_reads_the_flags_line() -> None:
    flags = leapfrog_suite.cpuinfo_flags(cpuinfo("amd-epyc-zen2-avx2"))
    assert {"avx2", "fma", "sse4_2"} <= flags
    assert not {"avx512f", "avx512_vnni", "avx_vnni"} & flags
    assert leapfrog_suite.cpuinfo_flags(cpuinfo("riscv64-vm")) == set()
    assert leapfrog_suite.cpuinfo_flags("") == set()


@pytest.mark.parametrize(
    ("name", "saturates", "expected"),
    [
        ("amd-epyc-zen2-avx2", None, "x86-64 without VNNI (/proc/cpuinfo: avx2=yes, no avx512_vnni, no avx_vnni)"),
        ("amd-epyc-zen2-avx2", True, "x86-64 without VNNI (/proc/cpuinfo: avx2=yes, no avx512_vnni, no avx_vnni)"),
        ("amd-epyc-zen5-vnni", True, "yet the CPU this process runs on has no VNNI"),  # qemu-x86_64 -cpu Haswell
        ("amd-epyc-zen2-avx2", False, None),  # kernels measured exact here: compare as everywhere
        ("amd-epyc-zen5-vnni", None, None),
        ("amd-epyc-zen5-vnni", False, None),
        ("intel-xeon-spr-amx", None, None),
    ],
)
def test_int8_saturation_reason_on_x86(name: str, saturates: bool | None, expected: str | None) -> None:
    flags = leapfrog_suite.cpuinfo_flags(cpuinfo(name))
    reason = leapfrog_suite.int8_saturation_reason("x86_64", flags, saturates=saturates, measured="got 32767")
    if expected is None:
        assert reason is None
        return
    assert reason is not None
    assert expected in reason
    # What a porter needs: that it is the host, the mechanism, and what avoids it.
    for words in ("host difference, not a port bug", "vpmaddubsw", "saturate", "reduce_range", "VNNI host"):
        assert words in reason
    assert "(measured: got 32767)" in reason


@pytest.mark.parametrize("saturates", [None, True, False])
def test_int8_saturation_is_never_excused_off_x86(saturates: bool | None) -> None:
    """On riscv64 a saturating int8 kernel is a wrong answer, whatever the host's cpuinfo says."""
    flags = leapfrog_suite.cpuinfo_flags(cpuinfo("amd-epyc-zen2-avx2"))
    assert leapfrog_suite.int8_saturation_reason("riscv64", flags, saturates=saturates) is None
    assert leapfrog_suite.int8_saturation_reason("riscv64", set(), saturates=saturates) is None


def test_host_cpu_flags_is_empty_off_x86(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leapfrog_suite, "machine", lambda: "riscv64")
    assert leapfrog_suite.host_cpu_flags() == set()


def test_facts_and_checks_agree_on_what_vnni_is() -> None:
    assert leapfrog_suite.X86_VNNI == facts_mod.X86_VNNI
