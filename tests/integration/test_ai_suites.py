"""The AI workload suites on native and on the real riscv64 chroot, against their goldens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import junitparser
import pytest

from harness.images import CachedImage
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.chroot]

SUITES = ["numpy", "onnxruntime", "torch", "sklearn", "upstream"]
TARGETS = ["native", "debian-trixie-riscv64"]


@pytest.fixture(scope="module")
def ai_report(debian_image: CachedImage, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ai")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "--root",
            str(ROOT),
            "run",
            "-t",
            ",".join(TARGETS),
            "-s",
            ",".join(SUITES),
            "--out",
            str(out),
            "-j",
            "2",
            "--no-history",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=2400,
    )
    print(done.stderr[-6000:])
    assert done.returncode == 0, done.stderr[-4000:]
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    data["_out"] = str(out)
    return data


def cell(data: dict[str, Any], target: str, suite: str) -> dict[str, Any]:
    return next(c for c in data["cells"] if c["target"] == target and c["suite"] == suite)


@pytest.mark.parametrize("suite", SUITES)
def test_suite_is_compatible_on_both(ai_report: dict[str, Any], suite: str) -> None:
    for target in TARGETS:
        c = cell(ai_report, target, suite)
        assert c["verdict"] == "compatible", (target, suite, c["message"])
        minimum = 4 if suite == "upstream" else 15
        assert len(c["cases"]) >= minimum
        for case in c["cases"]:
            assert case["status"] in ("passed", "skipped", "xfailed"), (target, case["name"], case["message"][:500])
            if case["status"] in ("skipped", "xfailed"):
                assert case["message"].strip(), f"{case['name']} was skipped without a reason"


def test_numeric_comparisons_record_their_errors(ai_report: dict[str, Any]) -> None:
    numpy_rv = cell(ai_report, "debian-trixie-riscv64", "numpy")
    keys = {k for case in numpy_rv["cases"] for k in case["metrics"]}
    assert any("max_abs_err" in k for k in keys)


def test_float_to_int_difference_is_recorded(ai_report: dict[str, Any]) -> None:
    """x86-64 and riscv64 answer NaN -> int64 differently; both answers are in the report."""

    def nan_int64(target: str) -> set[Any]:
        c = cell(ai_report, target, "numpy")
        return {
            case["metrics"]["float64(nan)"]
            for case in c["cases"]
            if case["name"].endswith("test_float_to_int[int64]") and "float64(nan)" in case["metrics"]
        }

    native, riscv = nan_int64("native"), nan_int64("debian-trixie-riscv64")
    assert native == {-(2**63)}  # x86-64 cvttsd2si: the "integer indefinite" value
    assert riscv == {2**63 - 1}  # RISC-V fcvt.l.d saturates NaN to the largest integer


def test_key_package_versions_are_facts(ai_report: dict[str, Any]) -> None:
    rv = next(t for t in ai_report["targets"] if t["name"] == "debian-trixie-riscv64")
    pkgs = rv["facts"]["packages"]
    for name in ("numpy", "torch", "onnxruntime", "scikit-learn"):
        assert pkgs.get(name), f"{name} version missing from the facts: {pkgs}"


def test_junit_counts_match(ai_report: dict[str, Any]) -> None:
    out = Path(ai_report["_out"])
    xml = junitparser.JUnitXml.fromfile(str(out / "junit-debian-trixie-riscv64.xml"))
    total = sum(s.tests for s in xml)
    assert total == sum(len(c["cases"]) for c in ai_report["cells"] if c["target"] == "debian-trixie-riscv64")


def test_upstream_tests_are_cases_whose_totals_are_the_counts(ai_report: dict[str, Any]) -> None:
    """Every upstream test is a case under its selection; per status, the cases are the selection's counts."""
    names: dict[str, set[str]] = {}
    for target in TARGETS:
        cases = cell(ai_report, target, "upstream")["cases"]
        selections = [c for c in cases if c["name"].count("::") == 1]
        assert len(selections) == 4, [c["name"] for c in selections]
        for sel in selections:
            prefix = sel["name"] + "::"
            children = [c for c in cases if c["name"].startswith(prefix)]
            m = sel["metrics"]
            for status in ("passed", "failed", "error", "skipped", "xfailed", "timeout"):
                assert m[status] == sum(c["status"] == status for c in children), (target, sel["name"], status)
            tests = [c for c in children if "::" in c["name"].removeprefix(prefix)]  # not a module's collection
            assert len(tests) + m["not_run"] == m["collected"], (target, sel["name"])
            assert len(children) >= 50, (target, sel["name"], len(children))
            package = "sklearn/" if "sklearn" in sel["name"] else "numpy/"
            assert all(c["name"].removeprefix(prefix).startswith(package) for c in children), sel["name"]
        names[target] = {c["name"] for c in cases}
    # The same upstream test has the same name on both, so triage and compare pair them.
    native, riscv = names.values()
    assert len(native & riscv) >= 0.5 * min(len(native), len(riscv))
