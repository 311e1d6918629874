"""Triage of hand-built runs: every class, its precedence, its evidence, and the exit-code rule."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import junitparser
import pytest

from harness.errors import ConfigError
from harness.model import CaseResult, CellResult, Run, Status, TargetFacts, TargetInfo, Verdict
from harness.report import render_all
from harness.triage import (
    BASELINE_ONLY,
    CLASSES,
    DEFAULT_FAIL_ON,
    apply_triage,
    counts_text,
    failing,
    first_difference,
    package_differences,
    parse_classes,
    triage_counts,
    triage_run,
)

HWPROBE = "OSError: [Errno 38] Function not implemented: 'riscv_hwprobe'"


def facts(emulation: str, arch: str = "riscv64", **packages: str) -> TargetFacts:
    return TargetFacts(
        arch=arch,
        os_id="debian",
        os_version="13",
        python="3.13.5",
        emulation=emulation,
        packages=packages or {"numpy": "2.2.4"},
    )


def ok(name: str, duration: float = 0.1) -> CaseResult:
    return CaseResult(name, Status.PASSED, duration)


def bad(name: str, status: Status = Status.FAILED, message: str = "", output: str = "") -> CaseResult:
    return CaseResult(name, status, 0.2, message=message, output=output)


def make_run(native: list[CaseResult] | None, rv: list[CaseResult], **extra: list[CaseResult]) -> Run:
    """native (baseline, x86_64) and rv (qemu-user chroot); ``vm=`` / ``board=`` add those targets."""
    targets = [TargetInfo("rv", "chroot", facts=facts("qemu-user"))]
    cells = [CellResult("rv", "s", Verdict.PARTIAL, rv)]
    if native is not None:
        targets.insert(0, TargetInfo("native", "native", facts=facts("native", "x86_64", numpy="2.3.1")))
        cells.insert(0, CellResult("native", "s", Verdict.PARTIAL, native))
    kinds = {"vm": ("qemu-vm", "qemu-system"), "board": ("ssh", "board")}
    for name, cases in extra.items():
        kind, emulation = kinds[name]
        targets.append(TargetInfo(name, kind, facts=facts(emulation)))
        cells.append(CellResult(name, "s", Verdict.PARTIAL, cases))
    return Run(
        "r", "2026-01-01T00:00:00+00:00", baseline="native" if native is not None else "", targets=targets, cells=cells
    )


def triage_of(run: Run, name: str, target: str = "rv") -> dict[str, Any] | None:
    return triage_run(run).get((target, "s", name))


def evidence_of(run: Run, name: str) -> dict[str, Any]:
    t = triage_of(run, name)
    assert t is not None, f"{name} has no triage"
    ev: dict[str, Any] = t["evidence"]
    return ev


def klass(run: Run, name: str, target: str = "rv") -> str | None:
    t = triage_of(run, name, target)
    return t["class"] if t else None


# --------------------------------------------------------------------------- classes


def test_target_only_with_evidence_beside_the_baseline() -> None:
    run = make_run([ok("t::a", 0.25)], [bad("t::a", message="Traceback\nassert 3 == 4\nE  more")])
    t = triage_of(run, "t::a")
    assert t is not None
    assert t["class"] == "target-only"
    ev = t["evidence"]
    assert ev["baseline"] == "native"
    assert ev["baseline_status"] == "passed"
    assert ev["baseline_duration"] == 0.25
    assert ev["first_difference"] == {"line": 1, "target": "Traceback", "baseline": ""}
    assert ev["packages"] == {"numpy": {"target": "2.2.4", "baseline": "2.3.1"}}


def test_everywhere_when_the_baseline_failed_errored_crashed_or_timed_out() -> None:
    for status in (Status.FAILED, Status.ERROR, Status.CRASHED, Status.TIMEOUT):
        run = make_run([bad("t::a", status, message="x\nsame")], [bad("t::a", message="x\nother")])
        t = triage_of(run, "t::a")
        assert t is not None
        assert t["class"] == "everywhere", status
        assert t["evidence"]["baseline_status"] == status.value
        assert t["evidence"]["first_difference"] == {"line": 2, "target": "other", "baseline": "same"}


def test_slow_names_the_slowdown_and_the_timeout_that_would_have_been_enough() -> None:
    run = make_run(
        [ok("t::ref", 1.0), ok("t::loop", 0.5)],
        [ok("t::ref", 16.0), bad("t::loop", Status.TIMEOUT, message="leapfrog-case-timeout: case exceeded 3 s")],
    )
    t = triage_of(run, "t::loop")
    assert t is not None
    assert t["class"] == "slow"
    ev = t["evidence"]
    assert ev["baseline_status"] == "passed"
    assert ev["baseline_duration"] == 0.5
    assert ev["slowdown"] == 16.0
    assert ev["slowdown_of"] == "cell"
    assert ev["estimated_duration"] == 8.0
    assert ev["timeout_enough"] == 12.0  # 0.5 s x 16 x 1.5


def test_slow_falls_back_to_the_targets_slowdown_then_to_none() -> None:
    run = make_run([ok("t::loop", 0.5)], [bad("t::loop", Status.TIMEOUT)])
    run.cells.append(CellResult("native", "other", Verdict.COMPATIBLE, [ok("o::a", 1.0)]))
    run.cells.append(CellResult("rv", "other", Verdict.COMPATIBLE, [ok("o::a", 4.0)]))
    ev = evidence_of(run, "t::loop")
    assert (ev["slowdown"], ev["slowdown_of"], ev["timeout_enough"]) == (4.0, "target", 3.0)
    alone = make_run([ok("t::loop", 0.5)], [bad("t::loop", Status.TIMEOUT)])
    t = triage_of(alone, "t::loop")
    assert t is not None
    assert t["class"] == "slow"
    assert t["evidence"]["slowdown"] is None
    assert t["evidence"]["timeout_enough"] is None


def test_timeout_enough_has_a_floor() -> None:
    run = make_run([ok("t::ref", 1.0), ok("t::q", 0.01)], [ok("t::ref", 2.0), bad("t::q", Status.TIMEOUT)])
    assert evidence_of(run, "t::q")["timeout_enough"] == 1.0


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            bad("t::a", Status.CRASHED, message="the Python process died during this case (SIGILL)"),
            {"signal": "SIGILL"},
        ),
        (
            bad("t::a", Status.FAILED, output="qemu: uncaught target signal 4 (Illegal instruction)"),
            {"signal": "SIGILL"},
        ),
        (bad("t::a", Status.FAILED, message=f"boom\n{HWPROBE}"), {"errno": "ENOSYS", "syscall": "riscv_hwprobe"}),
        (bad("t::a", Status.ERROR, message="syscall returned ENOSYS"), {"errno": "ENOSYS"}),
    ],
)
def test_known_emulation_limits_under_qemu_user(case: CaseResult, expected: dict[str, str]) -> None:
    run = make_run([ok("t::a")], [case])
    t = triage_of(run, "t::a")
    assert t is not None
    assert t["class"] == "emulator-suspect"
    ev = t["evidence"]
    for key, value in expected.items():
        assert ev[key] == value
    assert "syscall" in ev or "syscall" not in expected
    assert ev["matched"]  # the line that matched
    assert ev["baseline_status"] == "passed"


def test_sigill_counts_on_a_vm_but_enosys_does_not_and_neither_on_a_board() -> None:
    run = make_run(
        [ok("t::ill"), ok("t::nosys")],
        [ok("t::ill"), ok("t::nosys")],
        vm=[bad("t::ill", Status.CRASHED, message="died (SIGILL)"), bad("t::nosys", message=HWPROBE)],
        board=[bad("t::ill", Status.CRASHED, message="died (SIGILL)"), bad("t::nosys", message=HWPROBE)],
    )
    assert klass(run, "t::ill", "vm") == "emulator-suspect"
    assert klass(run, "t::nosys", "vm") == "target-only"  # the VM's own kernel answered ENOSYS
    assert klass(run, "t::ill", "board") == "target-only"
    assert klass(run, "t::nosys", "board") == "target-only"


def test_no_known_limit_on_a_native_target() -> None:
    run = make_run([ok("t::a")], [ok("t::a")])
    run.targets.append(TargetInfo("x86", "docker", facts=facts("native", "x86_64")))
    run.cells.append(CellResult("x86", "s", Verdict.PARTIAL, [bad("t::a", Status.CRASHED, message="(SIGILL)")]))
    assert klass(run, "t::a", "x86") == "target-only"


def test_emulator_suspect_when_a_vm_of_the_same_image_passed() -> None:
    run = make_run([ok("t::a")], [bad("t::a", message="wrong answer")], vm=[ok("t::a")])
    t = triage_of(run, "t::a")
    assert t is not None
    assert t["class"] == "emulator-suspect"
    assert t["evidence"]["passed_on"] == "vm"
    assert t["evidence"]["passed_on_emulation"] == "qemu-system"
    other = make_run([ok("t::a")], [bad("t::a", message="wrong answer")], vm=[ok("t::a")])
    vm = other.target("vm")
    assert vm is not None
    assert vm.facts is not None
    vm.facts.packages = {"numpy": "2.3.0"}  # not the same image
    assert klass(other, "t::a") == "target-only"


def test_unknown_without_a_baseline_result() -> None:
    no_baseline = make_run(None, [bad("t::a")])
    t = triage_of(no_baseline, "t::a")
    assert t is not None
    assert t["class"] == "unknown"
    assert t["evidence"]["baseline_status"] is None
    assert t["evidence"]["baseline_duration"] is None
    assert t["evidence"]["reason"] == "the run has no baseline"
    missing = make_run([ok("t::other")], [bad("t::a")])
    assert evidence_of(missing, "t::a")["reason"] == "native has no result for this case"
    skipped = make_run([CaseResult("t::a", Status.SKIPPED, 0.0, message="x86 only")], [bad("t::a")])
    t = triage_of(skipped, "t::a")
    assert t is not None
    assert (t["class"], t["evidence"]["baseline_status"]) == ("unknown", "skipped")


def test_infra_comes_first() -> None:
    run = make_run([bad("t::a")], [bad("t::a", Status.CRASHED, message="(SIGILL)")])
    run.cells[1].verdict = Verdict.INFRA_ERROR
    run.cells[1].message = "target rv: the chroot went away\nmore"
    t = triage_of(run, "t::a")
    assert t is not None
    assert t["class"] == "infra"
    assert t["evidence"]["cell_message"] == "target rv: the chroot went away"


def test_precedence_everywhere_over_slow_and_slow_over_emulator_and_emulator_over_target_only() -> None:
    run = make_run(
        [bad("t::both", Status.TIMEOUT), ok("t::slow"), ok("t::ill")],
        [
            bad("t::both", Status.TIMEOUT),
            bad("t::slow", Status.TIMEOUT, output="Illegal instruction"),
            bad("t::ill", Status.CRASHED, message="(SIGILL)"),
        ],
    )
    assert klass(run, "t::both") == "everywhere"
    assert klass(run, "t::slow") == "slow"
    assert klass(run, "t::ill") == "emulator-suspect"


def test_baseline_only_is_recorded_on_the_targets_passed_case() -> None:
    run = make_run([bad("t::a", message="max_abs_err 90")], [ok("t::a")])
    t = triage_of(run, "t::a")
    assert t is not None
    assert t["class"] == BASELINE_ONLY
    assert t["evidence"]["baseline_status"] == "failed"
    assert t["evidence"]["first_difference"] == {"line": 1, "target": "", "baseline": "max_abs_err 90"}
    assert ("native", "s", "t::a") not in triage_run(run)  # the baseline's own cases are never triaged


def test_expected_failures_and_skips_keep_their_status_and_get_no_triage() -> None:
    run = make_run(
        [bad("t::x"), bad("t::s"), ok("t::p")],
        [
            CaseResult("t::x", Status.XFAILED, 0.1, message="known"),
            CaseResult("t::s", Status.SKIPPED, 0.0, message="no"),
            ok("t::p"),
        ],
    )
    assert triage_run(run) == {}


def test_xpassed_is_triaged_like_a_failure() -> None:
    run = make_run([ok("t::a")], [CaseResult("t::a", Status.XPASSED, 0.1)])
    assert klass(run, "t::a") == "target-only"


# --------------------------------------------------------------------------- applying and storing


def test_apply_sets_clears_and_is_idempotent() -> None:
    run = make_run([ok("t::a"), ok("t::b")], [bad("t::a"), ok("t::b")])
    run.cells[1].cases[1].triage = {"class": "stale", "evidence": {}}
    assert apply_triage(run) is True
    assert run.cells[1].cases[0].triage is not None
    assert run.cells[1].cases[0].triage["class"] == "target-only"
    assert run.cells[1].cases[1].triage is None
    assert apply_triage(run) is False


def test_results_json_holds_triage_only_when_set() -> None:
    run = make_run([ok("t::a"), ok("t::b")], [bad("t::a"), ok("t::b")])
    apply_triage(run)
    data = json.loads(json.dumps(run.to_dict()))
    cases = data["cells"][1]["cases"]
    assert cases[0]["triage"]["class"] == "target-only"
    assert "triage" not in cases[1]
    back = Run.from_dict(data)
    assert back.cells[1].cases[0].triage == run.cells[1].cases[0].triage
    assert back.to_dict() == run.to_dict()


def test_a_triage_that_is_not_a_table_is_dropped_on_load() -> None:
    d = ok("t::a").to_dict()
    d["triage"] = "target-only"
    assert CaseResult.from_dict(d).triage is None


def test_counts() -> None:
    run = make_run(
        [ok("t::a"), bad("t::b"), ok("t::c"), bad("t::d")],
        [bad("t::a"), bad("t::b"), bad("t::c"), ok("t::d")],
    )
    apply_triage(run)
    counts = triage_counts(run)
    assert list(counts) == list(CLASSES)
    assert counts["target-only"] == 2
    assert counts["everywhere"] == 1
    assert counts["baseline-only"] == 1
    assert counts_text(counts) == "1 everywhere · 2 target-only · 1 baseline-only"
    assert counts_text(dict.fromkeys(CLASSES, 0)) == ""


# --------------------------------------------------------------------------- exit code


def test_default_fail_on_is_every_class_but_everywhere_and_infra() -> None:
    assert set(CLASSES) - DEFAULT_FAIL_ON == {"everywhere", "infra"}


def test_failing_follows_fail_on() -> None:
    everywhere = make_run([bad("t::a")], [bad("t::a")])
    assert not failing(everywhere)  # the baseline's own failure is judged by the target's class
    assert failing(everywhere, parse_classes("everywhere"))
    target_only = make_run([ok("t::a")], [bad("t::a")])
    assert failing(target_only)
    assert not failing(target_only, parse_classes("slow,emulator-suspect"))
    baseline_only = make_run([bad("t::a")], [ok("t::a")])
    assert failing(baseline_only)
    assert not failing(baseline_only, parse_classes("target-only"))


def test_failing_without_a_target_to_compare_with_is_as_before() -> None:
    run = Run("r", "t", baseline="native", targets=[TargetInfo("native", "native")])
    run.cells = [CellResult("native", "s", Verdict.PARTIAL, [ok("t::a"), bad("t::b")])]
    assert failing(run, frozenset())
    run.cells[0].cases[1].known_issue = "known <https://x>"
    assert not failing(run)


def test_known_issues_and_flaky_cases() -> None:
    run = make_run([ok("t::a")], [bad("t::a")])
    run.cells[1].cases[0].known_issue = "reason"
    assert not failing(run)
    explained = make_run([bad("t::a")], [ok("t::a")])
    explained.cells[0].cases[0].known_issue = "host without VNNI"
    assert not failing(explained)
    flaky = make_run([ok("t::a")], [ok("t::a")])
    flaky.cells[1].cases[0].flaky = True
    assert failing(flaky, frozenset())


def test_a_baseline_failure_the_target_skipped_still_counts() -> None:
    run = make_run([bad("t::a")], [CaseResult("t::a", Status.SKIPPED, 0.0)])
    assert failing(run)


def test_parse_classes() -> None:
    assert parse_classes("target-only, slow") == {"target-only", "slow"}
    assert parse_classes("all") == set(CLASSES)
    assert parse_classes("") == frozenset()
    with pytest.raises(ConfigError, match=r"'target_only'.*use a comma list of: infra, everywhere"):
        parse_classes("target_only,slow")


# --------------------------------------------------------------------------- helpers


def test_first_difference() -> None:
    assert first_difference("a\nb", "a\nb") is None
    assert first_difference("a\nb  ", "a\nb") is None  # trailing blanks only
    assert first_difference("a\nb", "a\nc") == {"line": 2, "target": "b", "baseline": "c"}
    assert first_difference("a", "a\nmore") == {"line": 2, "target": "", "baseline": "more"}
    long = first_difference("x" * 5000, "")
    assert long is not None
    assert len(long["target"]) == 300


def test_package_differences() -> None:
    a = TargetInfo("a", "chroot", facts=TargetFacts(packages={"numpy": "2.2.4", "torch": "2.6.0", "same": "1"}))
    b = TargetInfo("b", "native", facts=TargetFacts(packages={"numpy": "2.3.1", "onnx": "1.17", "same": "1"}))
    assert package_differences(a, b) == {
        "numpy": {"target": "2.2.4", "baseline": "2.3.1"},
        "onnx": {"target": "", "baseline": "1.17"},
        "torch": {"target": "2.6.0", "baseline": ""},
    }
    assert package_differences(a, TargetInfo("c", "chroot")) == {}


# --------------------------------------------------------------------------- JUnit


def test_junit_carries_the_class_as_a_testcase_property(tmp_path: Path) -> None:
    run = make_run([ok("t::a"), ok("t::b"), bad("t::c")], [bad("t::a", message="E  wrong"), ok("t::b"), ok("t::c")])
    render_all(run, tmp_path)
    root = ET.parse(tmp_path / "junit-rv.xml").getroot()
    props = {
        case.get("name"): {p.get("name", ""): p.get("value", "") for p in case.iterfind("properties/property")}
        for case in root.iter("testcase")
    }
    assert props["t::a"]["leapfrog.triage"] == "target-only"
    evidence = json.loads(props["t::a"]["leapfrog.triage.evidence"])
    assert evidence["baseline_status"] == "passed"
    assert evidence["first_difference"]["target"] == "E  wrong"
    assert props["t::b"] == {}
    assert props["t::c"]["leapfrog.triage"] == "baseline-only"
    (suite,) = list(junitparser.JUnitXml.fromfile(str(tmp_path / "junit-rv.xml")))  # still read by a consumer
    assert (suite.tests, suite.failures) == (3, 1)
    assert {p.get("name") for p in root.iterfind("testsuite/properties/property")} >= {"leapfrog.run_id", "arch"}
    native = ET.parse(tmp_path / "junit-native.xml").getroot()
    assert native.find(".//testcase/properties") is None  # the baseline's cases have no triage


def test_long_evidence_keeps_the_class_and_drops_the_json() -> None:
    from harness.report.junit import MAX_EVIDENCE, triage_properties

    props = triage_properties({"class": "target-only", "evidence": {"x": "y" * MAX_EVIDENCE}})
    assert props == {"leapfrog.triage": "target-only"}
    assert triage_properties(None) == {}


# --------------------------------------------------------------------------- the CLI


def test_run_prints_counts_and_fail_on_decides_exit_1(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from harness.cli import main
    from harness.report import load_run
    from harness.workflow import exit_code

    write_suite(
        "mini",
        {
            "test_m.py": """\
                import os

                def test_both():
                    assert os.environ["LEAPFROG_TARGET"] == "nowhere"

                def test_other_only():
                    assert os.environ["LEAPFROG_TARGET"] == "native"
                """
        },
    )
    (tmp_path / "targets").mkdir()
    for name in ("native", "other"):
        (tmp_path / "targets" / f"{name}.toml").write_text('kind = "native"\n')
    out = tmp_path / "out"
    argv = ["--root", str(tmp_path), "run", "-t", "native,other", "-s", "mini", "--out", str(out), "--no-history"]
    r = CliRunner().invoke(main, argv)
    assert r.exit_code == 1, r.output  # target-only is in the default --fail-on
    assert "triage: 1 everywhere · 1 target-only" in r.output
    data = json.loads((out / "results.json").read_text())
    triaged = {c["name"]: c["triage"]["class"] for cell in data["cells"] for c in cell["cases"] if "triage" in c}
    assert triaged == {"test_m.py::test_both": "everywhere", "test_m.py::test_other_only": "target-only"}
    run = load_run(out)
    assert exit_code(run, parse_classes("slow,unknown")) == 0
    assert exit_code(run, parse_classes("everywhere")) == 1
    run.cells[1].cases[1].known_issue = "expected on other"
    assert exit_code(run) == 0  # what is left fails everywhere: not the port's doing
    r = CliRunner().invoke(main, [*argv, "--fail-on", "target_only"])
    assert r.exit_code == 2
    assert "no triage class 'target_only'" in r.output


def test_fail_on_help_names_the_default() -> None:
    from harness.cli import run

    (option,) = [p for p in run.params if p.name == "fail_on"]
    default = ",".join(c for c in CLASSES if c in DEFAULT_FAIL_ON)
    assert f"[{default}:" in (getattr(option, "help", "") or "")


def test_merge_fail_on_decides_exit_1_of_the_shards_merged(tmp_path: Path) -> None:
    """Shard 1 ran the baseline, shard 2 the target: the merged run is triaged again and --fail-on rules it."""
    from click.testing import CliRunner

    from harness.cli import main

    whole = make_run([ok("t.py::a"), bad("t.py::b")], [bad("t.py::a"), bad("t.py::b")])
    for k, cell in enumerate(whole.cells, 1):
        shard = Run(whole.run_id, whole.started, baseline="native", targets=list(whole.targets), cells=[cell])
        (tmp_path / str(k)).mkdir()
        (tmp_path / str(k) / "results.json").write_text(json.dumps(shard.to_dict()))
    argv = ["--root", str(tmp_path), "merge", str(tmp_path / "1"), str(tmp_path / "2"), "--out", str(tmp_path / "m")]
    r = CliRunner().invoke(main, argv)
    assert r.exit_code == 1, r.output  # t.py::a fails on the target only: target-only, in the default --fail-on
    assert "triage: 1 everywhere · 1 target-only" in r.output
    data = json.loads((tmp_path / "m" / "results.json").read_text())
    assert {c["name"]: c["triage"]["class"] for c in data["cells"][1]["cases"]} == {
        "t.py::a": "target-only",
        "t.py::b": "everywhere",
    }
    assert CliRunner().invoke(main, [*argv, "--fail-on", "everywhere,infra"]).exit_code == 1  # b fails everywhere
    assert CliRunner().invoke(main, [*argv, "--fail-on", "slow,unknown"]).exit_code == 0
    r = CliRunner().invoke(main, [*argv, "--fail-on", "target_only"])
    assert r.exit_code == 2
    assert "no triage class 'target_only'" in r.output
