"""leapfrog doctor checks the host-requirements table, and names the package of every gap."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import doctor, hostreq
from harness.cli import main


def _missing(monkeypatch: pytest.MonkeyPatch, *programs: str) -> None:
    real = hostreq.Requirement.found

    def found(self: hostreq.Requirement) -> str | None:
        return None if self.program in programs else real(self)

    monkeypatch.setattr(hostreq.Requirement, "found", found)


def test_doctor_checks_every_program_of_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    _missing(monkeypatch, *(r.program for r in hostreq.TABLE))
    checks = {c.name: c for c in doctor.run_checks()}
    for req in hostreq.TABLE:
        check = checks[req.name]
        assert not check.ok
        assert check.fix == f"apt-get install -y {req.package}"
        assert check.kinds == req.kinds


def test_a_missing_arch_test_stops_chroot_targets_and_names_its_package(
    monkeypatch: pytest.MonkeyPatch, project_root: Path
) -> None:
    """The fresh Debian 12 of issue 11: mmdebstrap without its Recommends arch-test."""
    _missing(monkeypatch, "arch-test")
    monkeypatch.setattr(doctor, "_binfmt_ok", lambda arch: (True, "enabled, flags PF"))
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    r = CliRunner().invoke(main, ["--root", str(project_root), "doctor"])
    assert r.exit_code == 2, r.output
    assert "missing" in r.output
    assert "arch-test" in r.output
    assert "Install what is missing with: apt-get install -y arch-test" in r.output


def test_install_all_gathers_the_packages_of_the_gaps() -> None:
    gaps = [
        doctor.Check("debugfs", False, "not found", "", ("qemu-vm",), "e2fsprogs"),
        doctor.Check("mke2fs", False, "not found", "", ("qemu-vm",), "e2fsprogs"),
        doctor.Check("arch-test", False, "not found", "", ("chroot",), "arch-test"),
        doctor.Check("root", False, "not root", "run as root", ("chroot",)),
    ]
    assert doctor.install_all(gaps) == "apt-get install -y arch-test e2fsprogs"
    assert doctor.install_all(gaps[3:]) == ""
