"""``--workers``: one in-target cell split over several pytest processes, merged back as one process gives it.

The split itself is the probe's (``leapfrog_session.py``, run here in real pytest
processes on the host); the runner's side (a thread per worker, per-worker crash
resume, the merge) runs against the scripted fake target and, end to end, on
the native target with a suite whose cases crash, hang and fail.  The riscv64
twin is ``tests/integration/test_workers.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import harness.cell
import harness.runner
from harness import lanes
from harness.cli import main
from harness.config import TargetConfig, load_suite
from harness.errors import ConfigError
from harness.model import CaseResult, CellResult, Status, Verdict
from harness.plan import Plan, PlannedCell, make_plan
from harness.probe import PROBE_DIR
from harness.runner import Runner, RunOptions
from harness.targets.base import Completed
from tests.unit.fake_target import FakeTarget, Fleet, Script, Step, fake_config
from tests.unit.test_runner_fake import Events, suite
from tests.unit.test_runner_native import HOSTILE

sys.path.insert(0, str(PROBE_DIR))
import leapfrog_session  # the probe's module, as the target imports it

# ------------------------------------------------------------------ how many workers


def plan(**kw: Any) -> lanes.WorkerPlan:
    args: dict[str, Any] = {"kind": "in-target", "parallel": True, "suite_workers": None, "requested": None}
    return lanes.plan_workers(**{**args, **kw, "cores": lambda: kw.get("cores", 4)})


def test_the_command_line_wins_over_suite_toml_and_auto_is_the_cores() -> None:
    assert plan().count == lanes.DEFAULT_WORKERS
    assert plan(suite_workers=3).count == 3
    assert plan(suite_workers=3, requested=2).count == 2
    assert plan(suite_workers=3, requested=1).count == 1
    assert plan(requested="auto", cores=6).count == 6
    assert plan(suite_workers="auto", cores=5).count == 5


def test_auto_is_capped_by_the_cases_and_unsplittable_suites_stay_serial() -> None:
    assert plan(requested="auto", cores=16, cases=3).count == 3
    assert plan(requested=8, cases=1) == lanes.WorkerPlan(1, "one case", asked=8)
    assert plan(requested="auto", cores=1) == lanes.WorkerPlan(1, "one usable core", asked="auto")
    host = plan(requested=4, kind="host-driven")
    assert host.count == 1
    assert "host-driven" in host.serial_because
    marked = plan(requested=4, suite_workers=4, parallel=False)
    assert marked == lanes.WorkerPlan(1, "suite.toml says parallel = false", asked=4)


@pytest.mark.parametrize(
    ("toml", "want"),
    [("", None), ("workers = 2\n", 2), ('workers = "auto"\n', "auto"), ('workers = "AUTO"\n', "auto")],
)
def test_suite_toml_workers(write_suite, toml: str, want: object) -> None:  # type: ignore[no-untyped-def]
    s = load_suite(write_suite("s", {}, toml=toml))
    assert s.workers == want
    assert s.parallel is True


@pytest.mark.parametrize("value", ["0", "65", '"many"', "-1", "2.5", "true"])
def test_a_bad_workers_value_names_the_file_and_the_key(write_suite, value: str) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite("s", {}, toml=f"workers = {value}\n")
    with pytest.raises(ConfigError) as e:
        load_suite(folder)
    assert str(folder / "suite.toml") in str(e.value)
    assert '"workers"' in str(e.value)


def test_parallel_false_is_read(write_suite) -> None:  # type: ignore[no-untyped-def]
    assert load_suite(write_suite("s", {}, toml="parallel = false\n")).parallel is False


@pytest.mark.parametrize("value", ["0", "65", "two", "1.5"])
def test_the_workers_option_refuses_what_is_not_a_count(value: str) -> None:
    result = CliRunner().invoke(main, ["run", "--workers", value])
    assert result.exit_code == 2
    assert "--workers" in result.output
    assert "from 1 to 64" in result.output


# ------------------------------------------------------------------ the probe's split


def test_round_robin_without_weights_and_longest_first_with() -> None:
    names = [f"t.py::c{i}" for i in range(7)]
    assert leapfrog_session.worker_lanes(names, 3, {}) == [0, 1, 2, 0, 1, 2, 0]
    weights = {"t.py::c0": 10.0, "t.py::c1": 1.0, "t.py::c2": 1.0, "t.py::c3": 1.0, "t.py::c4": 9.0}
    got = leapfrog_session.worker_lanes(names, 2, weights)
    load = [sum(weights.get(n, 1.0) for n, k in zip(names, got, strict=True) if k == w) for w in (0, 1)]
    assert got[0] != got[4]  # the two long cases on different workers
    assert abs(load[0] - load[1]) <= 1.0


SPLIT_SUITE = """
import pytest

@pytest.mark.parametrize("i", range(7))
def test_p(i):
    pass

def test_last():
    pass
"""


def probe_run(folder: Path, tmp_path: Path, worker: str, **env: str) -> list[dict[str, Any]]:
    out = tmp_path / f"results-{worker.replace('/', '-')}.jsonl"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "leapfrog_probe", "-p", "no:cacheprovider", "-q", str(folder)],
        env={
            **os.environ,
            "PYTHONPATH": str(PROBE_DIR),
            "LEAPFROG_RESULTS": str(out),
            "LEAPFROG_WORKER": worker,
            **env,
        },
        cwd=folder,
        capture_output=True,
        check=False,
        timeout=120,
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_the_workers_shares_are_disjoint_and_cover_the_collection(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite("split", {"test_s.py": SPLIT_SUITE})
    whole = [r for r in probe_run(folder, tmp_path, "") if r["event"] == "case"]
    order = [r["name"] for r in whole]
    shares = []
    for k in range(3):
        records = probe_run(folder, tmp_path, f"{k}/3")
        (collected,) = [r for r in records if r["event"] == "collected"]
        cases = [r["name"] for r in records if r["event"] == "case"]
        assert cases == collected["names"]
        assert [order[p] for p in collected["positions"]] == cases
        assert collected["total"] == len(order)
        shares.append((cases, collected["digest"]))
    assert sorted(n for cases, _ in shares for n in cases) == sorted(order)
    assert len({digest for _, digest in shares}) == 1
    assert [len(cases) for cases, _ in shares] == [3, 3, 2]


def test_a_resumed_worker_keeps_its_share_less_what_is_done(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite("split", {"test_s.py": SPLIT_SUITE})
    first = [r["name"] for r in probe_run(folder, tmp_path, "1/2") if r["event"] == "case"]
    done = tmp_path / "done.txt"
    done.write_text(first[0] + "\n")
    (tmp_path / "results-1-2.jsonl").unlink()
    again = [r["name"] for r in probe_run(folder, tmp_path, "1/2", LEAPFROG_DONE=str(done)) if r["event"] == "case"]
    assert again == first[1:]


# ------------------------------------------------------------------ the runner, with the fake target


def play_worker(shares: dict[str, list[tuple[int, str, str]]]) -> Step:
    """One pytest run of whichever worker runs it: it plays its share of (position, name, status) less what is
    done; a ``segv`` case kills the process the first time it runs."""
    died: set[str] = set()

    def play(_t: FakeTarget, argv: list[str], env: dict[str, str], _timeout: float) -> Completed:
        done_file = Path(env["LEAPFROG_DONE"])
        done = set(done_file.read_text().split()) if done_file.exists() else set()
        share = [case for case in shares[env["LEAPFROG_WORKER"]] if case[1] not in done]
        records: list[dict[str, object]] = [
            {"event": "collected", "names": [n for _p, n, _s in share], "positions": [p for p, _n, _s in share]}
        ]
        for _p, name, status in share:
            records.append({"event": "start", "name": name})
            if status == "segv" and name not in died:
                died.add(name)
                break
            records.append({"event": "case", "name": name, "status": status, "duration": 0.01})
        else:
            records.append({"event": "end"})
        with open(env["LEAPFROG_RESULTS"], "a", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
        if records[-1]["event"] == "start":
            return Completed(argv, None, signal.SIGSEGV, "", "Fatal Python error: Segmentation fault", 0.1)
        return Completed(argv, 0, None, "", "", 0.1)

    return Step("a worker's share", play)


def test_two_workers_merge_in_collection_order_and_a_crashed_worker_resumes_its_own_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The whole collection is a0 b1 a2 b3 a4 b5; worker 1 dies in b3 and resumes at b5.
    shares = {
        "0/2": [(0, "t.py::a0", "passed"), (2, "t.py::a2", "failed"), (4, "t.py::a4", "passed")],
        "1/2": [(1, "t.py::b1", "passed"), (3, "t.py::b3", "segv"), (5, "t.py::b5", "passed")],
    }
    step = play_worker(shares)
    script = Script([step, step, step])
    monkeypatch.setattr(harness.runner, "make_target", Fleet({"rv": script}).make)
    events = Events()
    options = RunOptions(out=tmp_path / "out", workers=2)
    run = Runner(Plan([PlannedCell(fake_config(), suite(tmp_path, "s"))]), options, emit=events).execute()
    (cell,) = run.cells
    assert [(c.name, c.status) for c in cell.cases] == [
        ("t.py::a0", Status.PASSED),
        ("t.py::b1", Status.PASSED),
        ("t.py::a2", Status.FAILED),
        ("t.py::b3", Status.CRASHED),
        ("t.py::a4", Status.PASSED),
        ("t.py::b5", Status.PASSED),
    ]
    assert cell.workers == 2
    assert cell.verdict is Verdict.PARTIAL
    # Three pytest runs: one per worker, and worker 1 once more, told its own cases done.
    runs = script.pytest_runs
    assert sorted(env["LEAPFROG_WORKER"] for _a, env, _t in runs) == ["0/2", "1/2", "1/2"]
    assert len({env["LEAPFROG_RESULTS"] for _a, env, _t in runs}) == 2
    assert len([remote for _l, remote in script.puts if remote.endswith("/done-1.txt")]) == 1
    assert not [r for _l, r in script.puts if r.endswith("/done-0.txt")]
    assert "worker 2/2, pass 2" in cell.log
    assert "s: 2 workers (cases dealt round-robin)" in events.progress()
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["cells"][0]["workers"] == 2
    streamed = [json.loads(x)["name"] for x in (tmp_path / "out" / "cases.jsonl").read_text().splitlines()]
    assert sorted(streamed) == sorted(c.name for c in cell.cases)  # each case announced once


def test_workers_that_collected_different_cases_make_the_cell_infra_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def play(_t: FakeTarget, argv: list[str], env: dict[str, str], _timeout: float) -> Completed:
        k = env["LEAPFROG_WORKER"][0]
        records = [
            {"event": "collected", "names": [f"t.py::c{k}"], "positions": [0], "total": 2, "digest": f"d{k}"},
            {"event": "case", "name": f"t.py::c{k}", "status": "passed", "duration": 0.01},
            {"event": "end"},
        ]
        Path(env["LEAPFROG_RESULTS"]).write_text("".join(json.dumps(r) + "\n" for r in records))
        return Completed(argv, 0, None, "", "", 0.1)

    script = Script([Step("differs", play), Step("differs", play)])
    monkeypatch.setattr(harness.runner, "make_target", Fleet({"rv": script}).make)
    run = Runner(Plan([PlannedCell(fake_config(), suite(tmp_path, "s"))]), RunOptions(out=tmp_path / "o", workers=2))
    (cell,) = run.execute().cells
    assert cell.verdict is Verdict.INFRA_ERROR
    assert "collected different cases" in cell.message
    assert "parallel = false" in cell.message


def test_a_host_driven_suite_stays_serial_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def play(_t: FakeTarget, argv: list[str], env: dict[str, str], _timeout: float) -> Completed:
        raise AssertionError("a host-driven suite runs pytest on the host, never in the fake target")

    monkeypatch.setattr(harness.runner, "make_target", Fleet({"rv": Script([Step("none", play)])}).make)
    events = Events()
    s = dataclasses.replace(suite(tmp_path, "served"), kind="host-driven")
    run = Runner(Plan([PlannedCell(fake_config(), s)]), RunOptions(out=tmp_path / "o", workers=4), emit=events)
    monkeypatch.setattr(harness.cell.CellRunner, "run", lambda self: CellResult("rv", "served", Verdict.NOT_RUN))
    run.execute()
    assert any("served: serial: a host-driven suite runs serially" in m for m in events.progress())


def test_the_baseline_durations_balance_the_split() -> None:
    base = CellResult(
        "native",
        "s",
        Verdict.COMPATIBLE,
        cases=[
            CaseResult("t.py::a", Status.PASSED, 2.0),
            CaseResult("t.py::a::child", Status.PASSED, 1.0),
            CaseResult("t.py::b", Status.CRASHED, 0.0),
        ],
    )
    assert lanes.weights(base) == {"t.py::a": 2.0, "t.py::a::child": 1.0}
    assert lanes.top_level(base) == 2
    assert lanes.weights(None) == {}
    assert lanes.top_level(None) is None


def test_merge_puts_children_before_their_case_and_collection_errors_first() -> None:
    def c(name: str) -> CaseResult:
        return CaseResult(name, Status.PASSED, 0.0)

    merged = lanes.merge(
        [
            ([c("t.py"), c("u.py::a"), c("u.py::c::kid"), c("u.py::c")], {"u.py::a": 0, "u.py::c": 2}),
            ([c("t.py"), c("u.py::b")], {"u.py::b": 1}),
        ]
    )
    assert list(merged) == ["t.py", "u.py::a", "u.py::b", "u.py::c::kid", "u.py::c"]


# ------------------------------------------------------------------ end to end on the native target


def test_two_workers_give_the_same_cases_as_one_on_a_suite_that_crashes_hangs_and_fails(
    tmp_path: Path,
    write_suite,  # type: ignore[no-untyped-def]
    native_config: TargetConfig,
) -> None:
    folder = write_suite("hostile", {"test_h.py": HOSTILE}, toml="case_timeout = 2\ntimeout = 120\n")
    got = {}
    for workers in (1, 2):
        plan = make_plan([native_config], [load_suite(folder)])
        (cell,) = Runner(plan, RunOptions(out=tmp_path / f"w{workers}", workers=workers)).execute().cells
        got[workers] = [(c.name, c.status, c.message.split("(")[0]) for c in cell.cases]
        assert cell.workers == workers
    assert got[2] == got[1]
    assert {s for _n, s, _m in got[2]} == {Status.PASSED, Status.CRASHED, Status.TIMEOUT, Status.FAILED}


def test_a_split_runs_the_baseline_first_and_is_balanced_by_its_durations(
    tmp_path: Path,
    write_suite,  # type: ignore[no-untyped-def]
    native_config: TargetConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Native's cell of the suite runs first (a worker with no case changes nothing); the other target's split
    gets native's durations and is capped by its case count."""
    folder = write_suite("timed", {"test_t.py": "def test_a(): pass\ndef test_b(): pass\ndef test_c(): pass\n"})
    seen: dict[str, tuple[int, dict[str, float]]] = {}
    real_run, real_make = harness.cell.CellRunner.run, harness.runner.make_target
    fleet = Fleet({"rv": Script()})

    def record(self: harness.cell.CellRunner) -> CellResult:
        seen[self.target.name] = (self.workers, dict(self.weights))
        if self.target.name == "native":
            return real_run(self)
        return CellResult(self.target.name, self.cell.suite.name, Verdict.NOT_RUN)

    monkeypatch.setattr(harness.cell.CellRunner, "run", record)
    monkeypatch.setattr(
        harness.runner, "make_target", lambda cfg, **kw: fleet.make(cfg) if cfg.name == "rv" else real_make(cfg, **kw)
    )
    runner = Runner(
        make_plan([fake_config(), native_config], [load_suite(folder)]), RunOptions(out=tmp_path, workers=4)
    )
    assert [t.name for t in runner.plan.targets()] == ["native", "rv"]
    run = runner.execute()
    assert seen["native"] == (4, {})
    native = run.cell("native", "timed")
    assert native is not None
    assert [c.name for c in native.cases] == ["test_t.py::test_a", "test_t.py::test_b", "test_t.py::test_c"]
    assert native.message == ""  # the fourth worker's empty share says nothing
    workers, weights = seen["rv"]
    assert workers == 3  # capped by the baseline's three cases
    assert sorted(weights) == ["test_t.py::test_a", "test_t.py::test_b", "test_t.py::test_c"]
