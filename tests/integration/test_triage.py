"""Triage on real targets: native (the baseline), the riscv64 qemu-user chroot, and a VM of the same image.

The suite ``suites/triage`` holds one case made for each class; every case
must get the class it was built for, with the evidence that says why.  The
emulator-suspect case is honest: ``riscv_hwprobe`` (Linux 6.4+) works on a
riscv64 kernel, but qemu-user 7.2 answers ENOSYS.  The first test runs
native + chroot (about 40 s); the second adds the qemu-system VM of the same
image (its disk cached beside the image), where a real kernel answers the call,
so the chroot's failure is "passed on a VM of the same image" (about 2-3 min).
"""

from __future__ import annotations

import json
import shutil
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
VM = "debian-trixie-riscv64-vm"


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


@pytest.mark.qemu_vm
def test_fails_under_qemu_user_passes_in_the_vm_is_emulator_suspect(private_cache: Path, tmp_path: Path) -> None:
    """The chroot and the VM run one image; only the chroot fails the hwprobe case: emulator-suspect, naming the VM.

    Why it is honest: ``test_kernel_reports_isa_extensions`` calls ``riscv_hwprobe``
    (syscall 258, Linux 6.4+).  Under qemu-user 7.2 QEMU, not a kernel, answers
    system calls, and 7.2 has no riscv_hwprobe: ENOSYS.  In the qemu-system VM the
    image's own Debian 6.12 kernel answers it.  Same root filesystem, same
    Python and packages (the facts match), so the difference is the emulation.
    """
    for tool in ("qemu-system-riscv64", "qemu-img"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install qemu-system-misc opensbi qemu-utils)")
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "harness.cli", "--root", str(ROOT), "--suites-dir", str(SUITES)]
    started = time.monotonic()
    done = subprocess.run(
        [*argv, "run", "-t", f"native,{RV},{VM}", "-s", "triage", "--out", str(out), "--no-history"],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env=cache_env(private_cache),
    )
    print(f"leapfrog run native + {RV} + {VM} / triage took {time.monotonic() - started:.1f} s")
    assert done.returncode == 1, done.stderr[-3000:]  # target-only is in the default --fail-on

    data = json.loads((out / "results.json").read_text())
    facts = {t["name"]: t["facts"] for t in data["targets"]}
    assert facts[RV]["emulation"] == "qemu-user"
    assert facts[VM]["emulation"] == "qemu-system"
    cells = {c["target"]: {k["name"].split("::")[1]: k for k in c["cases"]} for c in data["cells"]}
    hwprobe = "test_kernel_reports_isa_extensions"
    assert cells[VM][hwprobe]["status"] == "passed", cells[VM][hwprobe]["message"][-2000:]
    assert "triage" not in cells[VM][hwprobe]  # passed here and on the baseline: nothing to triage

    chroot = cells[RV]
    assert chroot[hwprobe]["status"] == "failed"
    assert "riscv_hwprobe" in chroot[hwprobe]["message"]
    triage = chroot[hwprobe]["triage"]
    assert triage["class"] == "emulator-suspect"
    ev = triage["evidence"]
    assert ev["passed_on"] == VM
    assert ev["passed_on_emulation"] == "qemu-system"
    assert ev["baseline"] == "native"
    assert ev["baseline_status"] == "passed"

    # Every other case keeps the class it was built for, on the chroot and in the VM.
    built_for = {
        "test_assumes_x86": "target-only",
        "test_fails_everywhere": "everywhere",
        "test_cpu_loop": "slow",
        "test_expects_riscv64": "baseline-only",
    }
    for target in (RV, VM):
        got = {n: c["triage"]["class"] for n, c in cells[target].items() if "triage" in c and n != hwprobe}
        assert got == built_for, (target, {n: (c["status"], c["message"][:300]) for n, c in cells[target].items()})
