"""Triage on real targets: native (the baseline) and the riscv64 qemu-user chroot.

The suite ``suites/triage`` holds one case made for each class; every case
must get the class it was built for, with the evidence that says why.  The
emulator-suspect case is honest: ``riscv_hwprobe`` (Linux 6.4+) works on a
riscv64 kernel, but qemu-user 7.2 answers ENOSYS.  No VM is booted here (the
"passed on a VM of the same image" path is unit-tested in tests/unit/test_triage.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.report import load_run
from harness.triage import parse_classes
from harness.workflow import exit_code
from tests.integration.conftest import ROOT, cache_env

pytestmark = [pytest.mark.integration, pytest.mark.chroot]
SUITES = Path(__file__).parent / "suites"
RV = "debian-trixie-riscv64"


def test_every_case_lands_in_the_class_it_was_built_for(private_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "harness.cli", "--root", str(ROOT), "--suites-dir", str(SUITES)]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "run", "-t", f"native,{RV}", "-s", "triage", "--out", str(out), "--no-history"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=cache_env(private_cache),
    )
    print(f"leapfrog run native + {RV} / triage took {time.monotonic() - started:.1f} s")
    assert done.returncode == 1, done.stderr[-3000:]  # target-only is in the default --fail-on
    assert "triage: 1 everywhere · 1 slow · 1 emulator-suspect · 1 target-only · 1 baseline-only" in done.stdout

    data = json.loads((out / "results.json").read_text())
    cells = {c["target"]: c for c in data["cells"]}
    assert all("triage" not in c for c in cells["native"]["cases"])  # the baseline is never triaged
    cases = {c["name"].split("::")[1]: c for c in cells[RV]["cases"]}
    triaged = {name: c["triage"]["class"] for name, c in cases.items() if "triage" in c}
    assert triaged == {
        "test_assumes_x86": "target-only",
        "test_fails_everywhere": "everywhere",
        "test_cpu_loop": "slow",
        "test_kernel_reports_isa_extensions": "emulator-suspect",
        "test_expects_riscv64": "baseline-only",
    }, {n: (c["status"], c["message"][:300]) for n, c in cases.items()}

    facts = {t["name"]: t["facts"] for t in data["targets"]}
    ours, theirs = facts[RV]["packages"], facts["native"]["packages"]
    assert ours["pytest"]
    assert theirs["pytest"]
    differing = {k: {"target": ours[k], "baseline": theirs[k]} for k in ours if ours[k] != theirs.get(k)}

    def evidence(name: str) -> dict[str, object]:
        ev: dict[str, object] = cases[name]["triage"]["evidence"]
        assert ev["baseline"] == "native"
        assert ev["packages"] == differing
        return ev

    ev = evidence("test_assumes_x86")
    assert ev["baseline_status"] == "passed"
    assert isinstance(ev["baseline_duration"], float)
    diff = ev["first_difference"]
    assert isinstance(diff, dict)
    assert "found riscv64" in diff["target"]
    assert diff["baseline"] == ""

    ev = evidence("test_fails_everywhere")
    assert ev["baseline_status"] == "failed"

    ev = evidence("test_cpu_loop")
    assert cases["test_cpu_loop"]["status"] == "timeout"
    assert ev["baseline_status"] == "passed"
    assert ev["slowdown_of"] == "cell"
    assert isinstance(ev["slowdown"], float)
    assert ev["slowdown"] > 2
    assert isinstance(ev["timeout_enough"], float)
    assert ev["timeout_enough"] > 3  # more than the suite's case_timeout, which was not enough

    ev = evidence("test_kernel_reports_isa_extensions")
    assert ev["baseline_status"] == "passed"
    assert ev["errno"] == "ENOSYS"
    assert ev["syscall"] == "riscv_hwprobe"

    ev = evidence("test_expects_riscv64")
    assert cases["test_expects_riscv64"]["status"] == "passed"
    assert ev["baseline_status"] == "failed"

    # JUnit: the class is a property of each testcase.
    root = ET.parse(out / f"junit-{RV}.xml").getroot()
    props = {
        case.get("name", "").split("::")[1]: {
            p.get("name"): p.get("value") for p in case.iterfind("properties/property")
        }
        for case in root.iter("testcase")
    }
    assert {n: p.get("leapfrog.triage") for n, p in props.items() if p} == triaged

    # HTML: the triage section comes first after the summary, with the target-only failure.
    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.index('id="summary"') < html.index('id="triage"') < html.index('id="matrix"')
    section = html[html.index('id="target-only"') : html.index('id="matrix"')]
    assert "test_assumes_x86" in section
    assert "passed in " in section

    # --fail-on decides exit code 1; re-rendering gives the same triage (a pure function of the run).
    run = load_run(out)
    assert exit_code(run, parse_classes("infra")) == 0
    assert exit_code(run, parse_classes("slow")) == 1
    again = subprocess.run([*argv, "report", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((out / "results.json").read_text()) == data
