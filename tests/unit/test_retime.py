"""harness.retime: which passed cases are re-timed, what they keep, and the history they are judged against."""

from __future__ import annotations

import json
from pathlib import Path

from harness import history, retime
from harness.cell import CellRunner
from harness.config import TargetConfig, load_suite
from harness.model import CaseResult, CellResult, Run, Status, TargetInfo, Verdict
from harness.plan import make_plan
from harness.runner import RunOptions
from harness.targets.native import NativeTarget


def ok(name: str, duration: float) -> CaseResult:
    return CaseResult(name, Status.PASSED, duration)


def test_a_suspect_clears_the_ratio_and_the_floor_of_compare() -> None:
    cases = {
        c.name: c
        for c in (
            ok("t.py::stalled", 0.50),  # 0.03 before: 16× and +470 ms
            ok("t.py::short", 0.04),  # 0.01 before: 4×, but +30 ms < the 50 ms floor
            ok("t.py::steady", 1.30),  # 1.0 before: +300 ms, but 1.3× < 1.5×
            ok("t.py::new", 9.0),  # no history
            ok("t.py::stalled::child", 0.5),  # a child case: no pytest node of its own
            CaseResult("t.py::failed", Status.FAILED, 5.0),
            CaseResult("t.py::flaky", Status.PASSED, 5.0, flaky=True),
            ok("t.py::worse", 2.0),  # 0.1 before: the slowest change comes first
        )
    }
    earlier = {"t.py::stalled": 0.03, "t.py::short": 0.01, "t.py::steady": 1.0, "t.py::failed": 0.1}
    earlier |= {"t.py::flaky": 0.1, "t.py::worse": 0.1, "t.py::stalled::child": 0.01}
    assert retime.suspects(cases, earlier) == ["t.py::worse", "t.py::stalled"]


def test_a_stall_keeps_the_fastest_round_and_a_real_slowdown_stays() -> None:
    done = {"t.py::stall": ok("t.py::stall", 0.8), "t.py::real": ok("t.py::real", 0.9)}
    earlier = {"t.py::stall": 0.1, "t.py::real": 0.1}
    asked: list[list[str]] = []
    seconds = {"t.py::stall": [0.11, 0.3], "t.py::real": [0.95, 0.85]}

    def one_round(names: list[str], n: int) -> tuple[dict[str, CaseResult], str]:
        asked.append(names)
        return {name: CaseResult(name, Status.PASSED, seconds[name][n], metrics={"spawn_s": n}) for name in names}, ""

    assert retime.retime(done, earlier, 2, one_round) == ""
    assert asked == [["t.py::real", "t.py::stall"]] * 2
    assert done["t.py::stall"].duration == 0.11
    assert done["t.py::stall"].retimed == [0.8, 0.11, 0.3]
    assert done["t.py::stall"].metrics == {"spawn_s": 0}  # measured in the fastest round, with its duration
    assert done["t.py::real"].duration == 0.85  # slow in every round: still 8.5× its history
    assert done["t.py::real"].retimed == [0.9, 0.95, 0.85]
    again = CaseResult.from_dict(json.loads(json.dumps(done["t.py::stall"].to_dict())))
    assert again.retimed == [0.8, 0.11, 0.3]


def test_a_round_that_fails_or_breaks_adds_no_timing_and_its_problem_is_returned() -> None:
    done = {"t.py::a": ok("t.py::a", 0.8)}

    def broken(names: list[str], _n: int) -> tuple[dict[str, CaseResult], str]:
        return {n: CaseResult(n, Status.FAILED, 0.01) for n in names}, "target rv: results file is a link"

    assert retime.retime(done, {"t.py::a": 0.1}, 3, broken) == "target rv: results file is a link"
    assert done["t.py::a"].status is Status.PASSED
    assert done["t.py::a"].duration == 0.8
    assert done["t.py::a"].retimed is None
    assert CaseResult.from_dict({"name": "x", "status": "passed", "retimed": ["nan", -1, "0.5", 1e99]}).retimed == [
        0.0,
        0.5,
    ]


def _run(run_id: str, started: str, verdict: Verdict, **durations: float) -> Run:
    cases = [ok(f"t.py::{n}", d) for n, d in durations.items()]
    return Run(
        run_id,
        started,
        targets=[TargetInfo("rv", "chroot")],
        cells=[CellResult("rv", "s", verdict, cases)],
    )


def test_fastest_earlier_reads_the_last_runs_of_the_cell(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    assert retime.fastest_earlier(db, [("rv", "s")]) == {}
    assert not db.exists()  # reading is no reason to create one
    history.record(_run("r1", "2026-01-01T00:00:01+00:00", Verdict.COMPATIBLE, a=0.5, b=0.2), db=db)
    history.record(_run("r2", "2026-01-01T00:00:02+00:00", Verdict.COMPATIBLE, a=0.3, b=0.4), db=db)
    history.record(_run("r3", "2026-01-01T00:00:03+00:00", Verdict.INFRA_ERROR, a=0.01), db=db)
    assert retime.fastest_earlier(db, [("rv", "s"), ("rv", "none")]) == {("rv", "s"): {"t.py::a": 0.3, "t.py::b": 0.2}}
    assert retime.fastest_earlier(db, [("rv", "s")], last=1) == {("rv", "s"): {"t.py::a": 0.3, "t.py::b": 0.4}}
    (tmp_path / "bad.sqlite").write_text("not a database")
    warned: list[str] = []
    assert retime.for_cells([("rv", "s")], tmp_path / "bad.sqlite", warned.append) == {}
    assert "--retime-slow re-times nothing: the history" in warned[0]


SUITE = """\
import os
import time


def test_stalls_once():
    marker = os.path.join(os.environ["MARKER_DIR"], "seen")
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(0.6)


def test_steady():
    pass
"""


def test_a_cell_re_times_its_suspects_in_the_target(tmp_path: Path, write_suite, native_config: TargetConfig) -> None:  # type: ignore[no-untyped-def]
    """Real pytest on the host: a case that stalls once is re-timed and keeps its fast timing."""
    folder = write_suite("stall", {"test_s.py": SUITE})
    (cell_plan,) = make_plan([native_config], [load_suite(folder)]).cells
    target = NativeTarget(native_config)
    target.config.env["MARKER_DIR"] = str(tmp_path)
    earlier = {("native", "stall"): {"test_s.py::test_stalls_once": 0.01, "test_s.py::test_steady": 0.01}}
    options = RunOptions(out=tmp_path / "o", retime_slow=1, history_durations=earlier)
    result = CellRunner(target, cell_plan, options, lambda _kind, _data: None).run()
    cases = {c.name: c for c in result.cases}
    stalled, steady = cases["test_s.py::test_stalls_once"], cases["test_s.py::test_steady"]
    assert steady.retimed is None  # as fast as its history: not run again
    assert stalled.retimed is not None, result.log
    assert len(stalled.retimed) == 2
    assert stalled.retimed[0] >= 0.6
    assert stalled.duration == stalled.retimed[1] < 0.3
    assert "re-time 1: 1 slower than their history" in result.log
