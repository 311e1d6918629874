"""Case timeouts scaled from the baseline (``case_timeout = "auto"``): computation, plan, probe and runner."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import click
import pytest

from harness import autotimeout, history
from harness.autotimeout import FLOOR, MARGIN, Slowdown
from harness.cli.cmd_run import CaseTimeout
from harness.config import SuiteConfig, TargetConfig, load_project, load_suite
from harness.errors import ConfigError
from harness.model import CaseResult, CellResult, Run, Status, Verdict
from harness.plan import baseline_first, make_plan
from harness.runner import Runner, RunOptions
from tests.conftest import ROOT
from tests.unit.test_probe import run_probe

P = Status.PASSED


def cell(target: str, suite: str, cases: dict[str, tuple[Status, float]]) -> CellResult:
    return CellResult(target, suite, Verdict.PARTIAL, [CaseResult(n, s, d) for n, (s, d) in cases.items()])


def a_run(*cells: CellResult, run_id: str = "r1", started: str = "2025-01-01T00:00:00+00:00") -> Run:
    return Run(run_id=run_id, started=started, baseline="native", cells=list(cells))


@pytest.fixture
def project_targets() -> dict[str, TargetConfig]:
    p = load_project(ROOT)
    return {
        n: p.targets[n] for n in ("native", "debian-trixie-riscv64", "debian-trixie-amd64", "debian-trixie-riscv64-vm")
    }


def suite(tmp_path: Path, toml: str = "timeout = 600\ncase_timeout = 120\n") -> SuiteConfig:
    folder = tmp_path / "s"
    folder.mkdir(exist_ok=True)
    (folder / "suite.toml").write_text(toml)
    return load_suite(folder)


# ------------------------------------------------------------------ the computation


def test_margin_floor_cap_and_rounding() -> None:
    assert bounded(0.41, 11.0) == (13.6, "")  # 0.41 × 11 × 3 = 13.53, rounded up to 0.1 s
    assert bounded(0.08, 51.0) == (12.3, "")  # 12.24
    assert bounded(0.001, 50.0) == (FLOOR, "floor")  # 0.15 s: a millisecond case still gets the floor
    assert bounded(100.0, 50.0, cap=600.0) == (600.0, "cap")  # 15,000 s: never past the cell's timeout
    assert bounded(0.001, 1.0, cap=5.0) == (5.0, "cap")  # a cell timeout below the floor wins
    assert MARGIN == 3.0


def bounded(duration: float, factor: float, cap: float = 900.0) -> tuple[float, str]:
    return autotimeout.bounded(duration, factor, cap=cap)


def test_baseline_durations_are_of_passed_cases_only_and_the_rest_get_the_fallback(tmp_path: Path) -> None:
    base = cell("native", "s", {"a": (P, 1.0), "b": (Status.FAILED, 0.5), "c": (Status.TIMEOUT, 120.0)})
    got = autotimeout.compute(base, Slowdown(10.0, "run"), fallback=120.0, cap=600.0)
    assert {n: t.seconds for n, t in got.cases.items()} == {"a": 30.0}
    assert got.for_case("b") is got.fallback
    assert got.fallback.seconds == 120.0
    assert got.fallback.bound == "fallback"
    assert got.probe_table() == {"default": 120.0, "cases": {"a": 30.0}}
    # The fallback is capped too; no baseline cell at all: every case gets it.
    none = autotimeout.compute(None, Slowdown(10.0, "run"), fallback=300.0, cap=200.0)
    assert none.cases == {}
    assert none.fallback.seconds == 200.0


def test_slowdown_comes_from_this_run_then_history_then_the_default(
    tmp_path: Path, project_targets: dict[str, TargetConfig]
) -> None:
    rv = project_targets["debian-trixie-riscv64"]
    s = suite(tmp_path)
    base = cell("native", "s", {"a": (P, 0.5)})
    # This run: the target's other suite finished, 12× slower than the baseline there.
    run = a_run(base, cell("native", "other", {"x": (P, 1.0)}), cell(rv.name, "other", {"x": (P, 12.0)}))
    known = {(rv.name, "s"): Slowdown(20.0, "history", "run old, suite s")}
    got = autotimeout.for_cell(run, rv, s, known)
    assert got.cases["a"].slowdown == Slowdown(12.0, "run")
    assert got.cases["a"].seconds == 18.0  # 0.5 × 12 × 3
    # Nothing finished on the target yet: the history's slowdown.
    got = autotimeout.for_cell(a_run(base), rv, s, known)
    assert got.cases["a"].slowdown.factor == 20.0
    assert got.cases["a"].seconds == 30.0
    # Neither: the default for an emulated target.
    got = autotimeout.for_cell(a_run(base), rv, s, {})
    assert got.cases["a"].slowdown.source == "default"
    assert got.cases["a"].slowdown.factor == autotimeout.EMULATED_SLOWDOWN
    assert got.cases["a"].seconds == 75.0


def test_default_slowdown_by_architecture_and_kind(project_targets: dict[str, TargetConfig]) -> None:
    def factor(name: str) -> float:
        return autotimeout.default_slowdown(project_targets[name], host_machine="x86_64").factor

    assert factor("native") == 1.0
    assert factor("debian-trixie-amd64") == 1.0  # a chroot of the host's architecture emulates nothing
    assert factor("debian-trixie-riscv64") == autotimeout.EMULATED_SLOWDOWN
    assert factor("debian-trixie-riscv64-vm") == autotimeout.EMULATED_SLOWDOWN
    amd64_vm = dataclasses.replace(project_targets["debian-trixie-riscv64-vm"], arch="amd64")
    assert autotimeout.default_slowdown(amd64_vm, host_machine="x86_64").factor == autotimeout.EMULATED_SLOWDOWN
    assert autotimeout.default_slowdown(project_targets["debian-trixie-amd64"], host_machine="aarch64").factor > 1


def test_slowdown_from_the_newest_recorded_run_of_the_pair(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    rv = "debian-trixie-riscv64"
    # Oldest: suite s measured at 8×.  Newer: only suite t measured, 30× (s timed out there).
    history.record(
        a_run(
            cell("native", "s", {"a": (P, 1.0)}),
            cell(rv, "s", {"a": (P, 8.0)}),
            run_id="old",
            started="2025-01-01T00:00:00+00:00",
        ),
        db=db,
    )
    history.record(
        a_run(
            cell("native", "s", {"a": (P, 1.0)}),
            cell(rv, "s", {"a": (Status.TIMEOUT, 2.0)}),
            cell("native", "t", {"b": (P, 0.1)}),
            cell(rv, "t", {"b": (P, 3.0)}),
            run_id="new",
            started="2025-01-02T00:00:00+00:00",
        ),
        db=db,
    )
    # Another baseline's run is not this pair's.
    other = a_run(cell("host2", "s", {"a": (P, 1.0)}), cell(rv, "s", {"a": (P, 99.0)}), run_id="other")
    other.baseline, other.started = "host2", "2025-01-03T00:00:00+00:00"
    history.record(other, db=db)

    got = autotimeout.from_history(db, "native", [(rv, "s"), (rv, "t"), ("nowhere", "s")])
    # The newest run of the pair measures the target (30× on t): its target slowdown stands for s.
    assert got[(rv, "s")].factor == pytest.approx(30.0)
    assert got[(rv, "s")].detail == "run new"
    assert got[(rv, "t")] == Slowdown(pytest.approx(30.0), "history", "run new, suite t")  # type: ignore[arg-type]
    assert ("nowhere", "s") not in got
    assert autotimeout.from_history(db, "host2", [(rv, "s")])[(rv, "s")].factor == pytest.approx(99.0)


def test_history_read_only_and_missing_database_is_no_history(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "h.sqlite"
    assert autotimeout.from_history(missing, "native", [("rv", "s")]) == {}
    assert not missing.parent.exists()  # not created
    broken = tmp_path / "broken.sqlite"
    broken.write_text("not a database")
    with pytest.raises(sqlite3.Error):
        autotimeout.from_history(broken, "native", [("rv", "s")])


def test_note_gives_both_timings_and_a_timeout_message_says_it() -> None:
    t = autotimeout.compute(
        cell("native", "s", {"ok": (P, 0.08), "slow": (P, 0.41)}),
        Slowdown(51.0, "history", "run 20250101T000000Z-1, suite s"),
        fallback=300.0,
        cap=900.0,
    )
    cases = [
        CaseResult("ok", P, 2.5),
        CaseResult("slow", Status.TIMEOUT, 62.8, message="leapfrog-case-timeout: case exceeded 62.8 s"),
        CaseResult("new", P, 1.0),
    ]
    autotimeout.annotate(cases, t, "native")
    ok, slow, new = (c.timeout for c in cases)
    assert ok is not None
    assert slow is not None
    assert new is not None
    assert ok["note"] == (
        "auto timeout 12.3 s = 0.08 s on native × 51× slowdown (run 20250101T000000Z-1, suite s) × 3; ran 2.5 s here"
    )
    assert ok["seconds"] == 12.3
    assert ok["baseline_duration"] == 0.08
    assert ok["slowdown_from"] == "history"
    assert ok["source"] == "auto"
    assert slow["note"] in cases[1].message
    assert cases[1].message.startswith("leapfrog-case-timeout")
    assert "0.41 s on native" in cases[1].message
    assert "ran 62.8 s here" in cases[1].message
    assert new["source"] == "fallback"
    assert new["baseline_duration"] is None
    assert cases[0].message == ""  # a passed case keeps its (empty) message; the note is in case.timeout
    # results.json keeps it.
    assert CaseResult.from_dict(cases[0].to_dict()).timeout == ok
    assert "timeout" not in CaseResult("x", P, 1.0).to_dict()


# ------------------------------------------------------------------ configuration and plan


def test_suite_toml_auto_and_its_errors(tmp_path: Path) -> None:
    s = suite(tmp_path, 'timeout = 600\ncase_timeout = "auto"\n')
    assert s.auto_timeout
    assert s.case_timeout == 300.0  # the fallback for a case without a baseline duration
    assert not suite(tmp_path, "case_timeout = 20\n").auto_timeout
    with pytest.raises(
        ConfigError, match=r'suite.toml: key "case_timeout" is \'fast\'; write a number of seconds, or "auto"'
    ):
        suite(tmp_path, 'case_timeout = "fast"\n')


def test_case_timeout_option_takes_seconds_or_auto() -> None:
    opt = CaseTimeout()
    assert opt.convert("auto", None, None) == "auto"
    assert opt.convert("AUTO", None, None) == "auto"
    assert opt.convert("2", None, None) == 2.0
    for bad in ("0.5", "soon", "nan", "inf"):
        with pytest.raises(click.BadParameter, match="neither a number of seconds of at least 1 nor"):
            opt.convert(bad, None, None)


def test_baseline_cells_come_first(tmp_path: Path, project_targets: dict[str, TargetConfig]) -> None:
    rv, native = project_targets["debian-trixie-riscv64"], project_targets["native"]
    a, b = suite(tmp_path), dataclasses.replace(suite(tmp_path), name="b")
    plan = baseline_first(make_plan([rv, native], [a, b]))
    assert [c.key for c in plan.cells] == [("native", "s"), ("native", "b"), (rv.name, "s"), (rv.name, "b")]
    no_native = make_plan([rv], [a])
    assert baseline_first(no_native) is no_native


def test_runner_orders_the_baseline_first_only_under_auto(
    tmp_path: Path, project_targets: dict[str, TargetConfig]
) -> None:
    rv, native = project_targets["debian-trixie-riscv64"], project_targets["native"]
    fixed = suite(tmp_path)
    auto = dataclasses.replace(fixed, auto_timeout=True)
    targets_of = lambda r: [t.name for t in r.plan.targets()]  # noqa: E731
    assert targets_of(Runner(make_plan([rv, native], [fixed]), RunOptions(out=tmp_path / "1"))) == [rv.name, "native"]
    assert targets_of(Runner(make_plan([rv, native], [auto]), RunOptions(out=tmp_path / "2"))) == ["native", rv.name]
    flag = RunOptions(out=tmp_path / "3", auto_timeout=True)
    assert targets_of(Runner(make_plan([rv, native], [fixed]), flag)) == ["native", rv.name]
    # A number on the command line wins over suite.toml's auto.
    number = RunOptions(out=tmp_path / "4", case_timeout=5)
    assert targets_of(Runner(make_plan([rv, native], [auto]), number)) == [rv.name, "native"]


# ------------------------------------------------------------------ the probe


def test_probe_enforces_each_cases_own_timeout(tmp_path: Path) -> None:
    body = """
import time
def test_short_budget(): time.sleep(3)
def test_default_budget(): time.sleep(1.5)
"""
    table = tmp_path / "timeouts.json"
    table.write_text(json.dumps({"default": 30, "cases": {"test_s.py::test_short_budget": 1, "bad": "x"}}))
    records = run_probe(tmp_path, body, LEAPFROG_CASE_TIMEOUT="1", LEAPFROG_CASE_TIMEOUTS=str(table))
    cases = {str(r["name"]).split("::")[1]: r for r in records if r["event"] == "case"}
    assert cases["test_short_budget"]["status"] == "timeout"
    assert "case exceeded 1 s" in str(cases["test_short_budget"]["message"])
    assert cases["test_default_budget"]["status"] == "passed"  # 1.5 s: past LEAPFROG_CASE_TIMEOUT, within "default"


# ------------------------------------------------------------------ the runner, for real on two native targets

SUITE = """
import os, time

def test_reference():
    time.sleep(0.2)

def test_varies():
    # Quick on the baseline, slow on the other target.
    time.sleep(0.2 if os.environ["LEAPFROG_TARGET"] == "native" else 4)

def test_fails_on_baseline():
    assert os.environ["LEAPFROG_TARGET"] != "native"
"""


def test_runner_scales_timeouts_from_the_baseline_cell_it_waits_for(
    tmp_path: Path, write_suite: Any, native_config: TargetConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --jobs 2 both targets start at once: the second waits for the baseline's cell of the suite."""
    monkeypatch.setattr(autotimeout, "FLOOR", 1.0)  # so a timeout shows in seconds, not the real 10 s floor
    folder = write_suite("auto", {"test_a.py": SUITE}, toml='timeout = 120\ncase_timeout = "auto"\n')
    other = dataclasses.replace(native_config, name="native-2")
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def emit(kind: str, data: dict[str, Any]) -> None:
        if kind == "cell-end":
            with lock:
                events.append((kind, data["cell"].target))
        elif kind == "progress" and "auto case timeouts for" in data["message"]:
            with lock:
                events.append(("timeouts", data["target"]))

    plan = make_plan([native_config, other], [load_suite(folder)])  # the first native target is the baseline
    run = Runner(plan, RunOptions(out=tmp_path / "out", jobs=2), emit=emit).execute()
    base, second = run.cell("native", "auto"), run.cell("native-2", "auto")
    assert base is not None
    assert second is not None
    assert all(c.timeout is None for c in base.cases)  # the baseline runs under the fixed fallback
    got = {c.name.split("::")[1]: c for c in second.cases}
    durations = {c.name.split("::")[1]: c.duration for c in base.cases}
    ref = got["test_reference"].timeout
    assert ref is not None
    assert ref["baseline_duration"] == durations["test_reference"]  # the baseline's cell finished first
    assert ref["slowdown_from"] == "default"  # native-2 had no other cell; no history given
    assert ref["seconds"] == max(1.0, autotimeout.bounded(durations["test_reference"], 1.0, cap=120)[0])
    assert got["test_reference"].status is P
    varies = got["test_varies"]
    assert varies.status is Status.TIMEOUT, varies.message
    assert varies.timeout is not None
    assert "auto timeout 1 s" in varies.message
    assert f"{durations['test_varies']:.3g} s on native" in varies.message
    assert "ran " in varies.message
    fails = got["test_fails_on_baseline"].timeout
    assert fails is not None
    assert fails["source"] == "fallback"
    assert fails["seconds"] == 120.0  # the default 300 s, capped at the cell's 120 s
    # The baseline's cell ended before native-2 computed its timeouts.
    assert events.index(("cell-end", "native")) < events.index(("timeouts", "native-2")), events
