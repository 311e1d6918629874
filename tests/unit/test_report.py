"""Reports from a hand-made Run: escaping, JUnit read back by a real consumer, slowdowns."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest

from harness.compare import cell_slowdown
from harness.model import CaseResult, CellResult, Run, Status, TargetFacts, TargetInfo, Verdict
from harness.report import load_run, render_all

EVIL = '<script>alert("x")</script> ]]> \x00\x1b[0m \udcff'


def make_run() -> Run:
    def cases(scale: float) -> list[CaseResult]:
        return [
            CaseResult("t.py::test_ok", Status.PASSED, 0.1 * scale, metrics={"p99_ms": 3.5}),
            CaseResult(f"t.py::test_{EVIL}", Status.FAILED, 0.2 * scale, message=EVIL, output=EVIL),
            CaseResult("t.py::test_skip", Status.SKIPPED, 0.0, message="no"),
            CaseResult("t.py::test_boom", Status.CRASHED, 0.0, message="died (SIGSEGV)"),
            CaseResult("t.py::test_slow", Status.TIMEOUT, 1.0),
            CaseResult("t.py::test_xf", Status.XFAILED, 0.01, message="known"),
        ]

    return Run(
        run_id="r1",
        started="2026-11-29T00:00:00+00:00",
        baseline="native",
        targets=[
            TargetInfo("native", "native", facts=TargetFacts(arch="x86_64", python="3.11")),
            TargetInfo("rv", "chroot", facts=TargetFacts(arch="riscv64", isa="rv64imafdc", os_name=EVIL)),
            TargetInfo("dead", "chroot", error="could not boot"),
        ],
        cells=[
            CellResult("native", "s", Verdict.PARTIAL, cases(1.0), wall=2.0),
            CellResult("rv", "s", Verdict.PARTIAL, cases(8.0), wall=20.0),
            CellResult("dead", "s", Verdict.INFRA_ERROR, [], message="could not boot"),
        ],
    )


def test_round_trip_through_json(tmp_path: Path) -> None:
    run = make_run()
    (tmp_path / "results.json").write_text(json.dumps(run.to_dict()))
    back = load_run(tmp_path)
    assert back.to_dict() == run.to_dict()


def test_html_escapes_everything(tmp_path: Path) -> None:
    render_all(make_run(), tmp_path)
    html = (tmp_path / "index.html").read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "×8.00" in html  # slowdown of rv against native
    assert "could not boot" in html


def test_junit_is_read_back_by_a_real_consumer(tmp_path: Path) -> None:
    render_all(make_run(), tmp_path)
    xml = junitparser.JUnitXml.fromfile(str(tmp_path / "junit-rv.xml"))
    (suite,) = list(xml)
    assert suite.tests == 6
    assert suite.failures == 1
    assert suite.errors == 2
    assert suite.skipped == 2
    props = {p.name: p.value for p in suite.properties()}
    assert props["arch"] == "riscv64"
    assert props["isa"] == "rv64imafdc"
    ET.parse(tmp_path / "junit-rv.xml")  # well-formed despite ]]> and control characters
    dead = junitparser.JUnitXml.fromfile(str(tmp_path / "junit-dead.xml"))
    (dsuite,) = list(dead)
    assert dsuite.errors == 1


def test_slowdown_uses_cases_passed_on_both() -> None:
    run = make_run()
    rv = run.cell("rv", "s")
    assert rv is not None
    assert cell_slowdown(run, rv) == pytest.approx(8.0)
    native = run.cell("native", "s")
    assert native is not None
    assert cell_slowdown(run, native) is None
