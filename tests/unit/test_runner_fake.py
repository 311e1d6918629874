"""The runner's retries, restarts and timeouts against a scripted fake target (no container, VM or emulator).

Twins in the unit tier of integration tests that need a live target:
``test_faults.py::test_vm_killed_mid_suite_is_retried`` (a lost target is
started again and the cell retried: attempts 2) and
``test_faults.py::test_container_removed_mid_suite_is_infra_error`` (with
``--retries 0`` the cell is infra-error and the next cell gets a fresh target).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import harness.runner
from harness.config import SuiteConfig, SuitePackages, TargetConfig
from harness.errors import ConfigError, ImageError, TargetError
from harness.model import Run, Status, Verdict
from harness.plan import Plan, PlannedCell
from harness.runner import Runner, RunOptions
from tests.unit.fake_target import (
    Fleet,
    Script,
    case_timeout,
    cell_timeout,
    crashes,
    fails,
    fake_config,
    interrupted,
    lost,
    passes,
)


def suite(tmp_path: Path, name: str, *, timeout: float = 60, case_timeout: float = 30, **kw: Any) -> SuiteConfig:
    folder = tmp_path / "suites" / name
    folder.mkdir(parents=True, exist_ok=True)
    return SuiteConfig(
        name=name,
        path=folder,
        description="",
        kind="in-target",
        timeout=float(timeout),
        case_timeout=float(case_timeout),
        key_packages=[],
        packages=kw.pop("packages", SuitePackages()),
        settings={},
        **kw,
    )


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        self.seen.append((kind, data))

    def progress(self) -> list[str]:
        return [str(d["message"]) for k, d in self.seen if k == "progress"]


def run_fake(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scripts: dict[str, Script],
    cells: list[tuple[TargetConfig, SuiteConfig]],
    **options: Any,
) -> tuple[Run, Events]:
    fleet = Fleet(scripts)
    monkeypatch.setattr(harness.runner, "make_target", fleet.make)
    events = Events()
    plan = Plan([PlannedCell(t, s) for t, s in cells])
    run = Runner(plan, RunOptions(out=tmp_path / "out", **options), emit=events).execute()
    return run, events


def cell_of(run: Run, target: str, suite_name: str):  # type: ignore[no-untyped-def]
    cell = run.cell(target, suite_name)
    assert cell is not None
    return cell


# ------------------------------------------------------------------ a target lost mid-run


def test_a_target_lost_mid_run_is_started_again_and_the_cell_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(runs=[lost("the VM was killed"), passes("t.py::a", "t.py::b")])
    run, events = run_fake(tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "slow"))], retries=1)
    cell = cell_of(run, "rv", "slow")
    assert cell.verdict is Verdict.COMPATIBLE
    assert cell.attempts == 2  # the first try lost its target; the retry got a fresh one
    assert [c.status for c in cell.cases] == [Status.PASSED, Status.PASSED]
    assert (script.started, script.stopped, len(script.pytest_runs)) == (2, 2, 2)
    assert any("the VM was killed" in m and "restarting the target and retrying" in m for m in events.progress())
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["cells"][0]["attempts"] == 2


def test_with_no_retries_a_lost_target_is_infra_error_and_the_next_cell_gets_a_fresh_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(runs=[lost("the container was removed"), passes("t.py::q")])
    cells = [(fake_config(), suite(tmp_path, "slow")), (fake_config(), suite(tmp_path, "quick"))]
    run, _events = run_fake(tmp_path, monkeypatch, {"rv": script}, cells, retries=0)
    slow, quick = cell_of(run, "rv", "slow"), cell_of(run, "rv", "quick")
    assert (slow.verdict, slow.attempts) == (Verdict.INFRA_ERROR, 1)
    assert "the container was removed" in slow.message
    assert (quick.verdict, quick.attempts) == (Verdict.COMPATIBLE, 1)
    assert (script.started, script.stopped) == (2, 2)  # a broken target is not reused


def test_retries_end_when_the_target_keeps_breaking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(runs=[lost("gone 1"), lost("gone 2"), lost("gone 3")])
    run, _events = run_fake(tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s"))], retries=2)
    cell = cell_of(run, "rv", "s")
    assert (cell.verdict, cell.attempts) == (Verdict.INFRA_ERROR, 3)
    assert "gone 3" in cell.message
    assert (script.started, script.stopped, len(script.pytest_runs)) == (3, 3, 3)


def test_a_failed_test_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(runs=[fails("t.py::bad", "t.py::good")])
    run, _events = run_fake(tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s"))], retries=3)
    cell = cell_of(run, "rv", "s")
    assert cell.verdict is Verdict.PARTIAL
    assert {c.name: c.status for c in cell.cases} == {"t.py::good": Status.PASSED, "t.py::bad": Status.FAILED}
    assert (cell.attempts, script.started, len(script.pytest_runs)) == (1, 1, 1)


def test_a_target_that_does_not_stop_cleanly_is_reported_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(runs=[passes("t.py::a")], stop_error=TargetError("target rv: the daemon went away."))
    run, events = run_fake(tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s"))])
    assert cell_of(run, "rv", "s").verdict is Verdict.COMPATIBLE
    assert any("did not stop cleanly: target rv: the daemon went away." in m for m in events.progress())
    assert run.finished


# ------------------------------------------------------------------ a target that does not start


def test_a_start_that_breaks_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(runs=[passes("t.py::a")], starts=[TargetError("target rv: boot timed out.")])
    run, events = run_fake(tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s"))], retries=1)
    cell = cell_of(run, "rv", "s")
    assert cell.verdict is Verdict.COMPATIBLE
    assert cell.attempts == 1  # a failed start is not a try of the cell
    assert (script.started, script.stopped) == (2, 2)  # the failed start was stopped too
    assert any(m.startswith("start failed, retrying: target rv: boot timed out.") for m in events.progress())
    info = run.target("rv")
    assert info is not None
    assert (info.error, info.image) == ("", "fake-image-rv")


def test_start_retries_end_and_every_cell_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    boom = TargetError("target rv: boot timed out.")
    script = Script(starts=[boom, boom, boom])
    cells = [(fake_config(), suite(tmp_path, "a")), (fake_config(), suite(tmp_path, "b"))]
    run, _events = run_fake(tmp_path, monkeypatch, {"rv": script}, cells, retries=2)
    for name in ("a", "b"):
        cell = cell_of(run, "rv", name)
        assert (cell.verdict, cell.attempts) == (Verdict.INFRA_ERROR, 3)
        assert cell.message == "the target could not start: target rv: boot timed out."
    assert (script.started, script.stopped, script.pytest_runs) == (3, 3, [])
    info = run.target("rv")
    assert info is not None
    assert info.error == "target rv: boot timed out."


@pytest.mark.parametrize("error", [ImageError("image x is not cached."), ConfigError("key y is wrong.")])
def test_a_target_that_cannot_run_is_not_retried_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    broken, fine = Script(starts=[error]), Script(runs=[passes("t.py::a")])
    s = suite(tmp_path, "s")
    cells = [(fake_config("broken"), s), (fake_config("fine"), s)]
    run, _events = run_fake(tmp_path, monkeypatch, {"broken": broken, "fine": fine}, cells, retries=5)
    cell = cell_of(run, "broken", "s")
    assert (cell.verdict, cell.attempts) == (Verdict.INFRA_ERROR, 1)
    assert str(error) in cell.message
    assert broken.started == 1
    assert cell_of(run, "fine", "s").verdict is Verdict.COMPATIBLE


# ------------------------------------------------------------------ crashes and timeouts


def test_a_crash_is_recorded_and_the_suite_resumes_on_the_same_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(runs=[crashes("t.py::b", "t.py::a"), passes("t.py::c")])
    run, _events = run_fake(tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s"))])
    cell = cell_of(run, "rv", "s")
    got = {c.name: c for c in cell.cases}
    assert {n: c.status for n, c in got.items()} == {
        "t.py::a": Status.PASSED,
        "t.py::b": Status.CRASHED,
        "t.py::c": Status.PASSED,
    }
    assert "SIGSEGV" in got["t.py::b"].message
    assert cell.verdict is Verdict.PARTIAL
    assert (cell.attempts, script.started, len(script.pytest_runs)) == (1, 1, 2)  # resumed, not restarted
    done = [(local, remote) for local, remote in script.puts if remote.endswith("/done.txt")]
    assert len(done) == 1  # the probe was told what is recorded before the second pass


def test_resumes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(runs=[crashes("t.py::a"), crashes("t.py::b"), crashes("t.py::c")])
    run, _events = run_fake(
        tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s"))], max_resumes=1
    )
    cell = cell_of(run, "rv", "s")
    assert [c.name for c in cell.cases] == ["t.py::a", "t.py::b"]
    assert len(script.pytest_runs) == 2  # the first pass and one resume


def test_a_case_timeout_is_that_case_only_and_the_suite_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script(runs=[case_timeout("t.py::stuck", "t.py::a"), passes("t.py::b")])
    run, _events = run_fake(
        tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s", case_timeout=7))]
    )
    cell = cell_of(run, "rv", "s")
    got = {c.name: c for c in cell.cases}
    assert got["t.py::stuck"].status is Status.TIMEOUT
    assert "exceeded the case timeout of 7 s" in got["t.py::stuck"].message
    assert got["t.py::b"].status is Status.PASSED
    assert script.pytest_runs[0][1]["LEAPFROG_CASE_TIMEOUT"] == "7.0"
    assert (cell.attempts, script.started) == (1, 1)


def test_the_case_timeout_on_the_command_line_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(runs=[case_timeout("t.py::stuck")])
    run, _events = run_fake(
        tmp_path,
        monkeypatch,
        {"rv": script},
        [(fake_config(), suite(tmp_path, "s", case_timeout=7))],
        case_timeout=3,
        max_resumes=0,
    )
    (case,) = cell_of(run, "rv", "s").cases
    assert "exceeded the case timeout of 3 s" in case.message
    assert script.pytest_runs[0][1]["LEAPFROG_CASE_TIMEOUT"] == "3"


def test_a_cell_timeout_ends_the_cell_without_a_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(runs=[cell_timeout("t.py::hang", "t.py::a")])
    run, _events = run_fake(
        tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s", timeout=40))], retries=2
    )
    cell = cell_of(run, "rv", "s")
    got = {c.name: c for c in cell.cases}
    assert got["t.py::a"].status is Status.PASSED
    assert got["t.py::hang"].status is Status.TIMEOUT
    assert "killed by the host: the cell exceeded 40 s" in got["t.py::hang"].message
    assert "the cell timed out after 40 s" in cell.message
    assert (cell.attempts, script.started, len(script.pytest_runs)) == (1, 1, 1)
    assert 0 < script.pytest_runs[0][2] <= 40  # pytest ran under what is left of the cell's budget


def test_a_spent_budget_ends_the_cell_before_another_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    slow_crash = crashes("t.py::a")

    def play(*args: Any) -> Any:
        time.sleep(1.1)  # the pass spends the whole budget of 1 s
        return slow_crash.play(*args)

    script = Script(runs=[type(slow_crash)("slow crash", play)])
    run, _events = run_fake(tmp_path, monkeypatch, {"rv": script}, [(fake_config(), suite(tmp_path, "s", timeout=1))])
    cell = cell_of(run, "rv", "s")
    assert [(c.name, c.status) for c in cell.cases] == [("t.py::a", Status.CRASHED)]
    assert "the cell ran out of its 1 s budget" in cell.message
    assert len(script.pytest_runs) == 1


# ------------------------------------------------------------------ Ctrl-C and provisioning


def test_ctrl_c_stops_the_target_and_keeps_what_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = Script(runs=[passes("t.py::a"), interrupted()])
    cells = [(fake_config(), suite(tmp_path, "first")), (fake_config(), suite(tmp_path, "second"))]
    with pytest.raises(KeyboardInterrupt):
        run_fake(tmp_path, monkeypatch, {"rv": script}, cells)
    assert script.started == script.stopped == 1
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    verdicts = {c["suite"]: c["verdict"] for c in saved["cells"]}
    assert verdicts == {"first": "compatible", "second": "not-run"}
    assert saved["finished"]


def test_an_openeuler_target_is_provisioned_and_its_missing_packages_reach_the_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner starts every target through harness.guest: an openEuler image gets dnf, a Debian one not."""
    packages = SuitePackages(debian=["python3-numpy"], openeuler=["python3-torch"])
    oe, deb = Script(runs=[passes("t.py::a")]), Script(runs=[passes("t.py::a")])
    s = suite(tmp_path, "s", packages=packages)
    cells = [(fake_config("oe", distro="openeuler"), s), (fake_config("deb", distro="debian"), s)]
    run, events = run_fake(tmp_path, monkeypatch, {"oe": oe, "deb": deb}, cells)
    assert any(a[:2] == ["dnf", "list"] and a[-1] == "python3-torch" for a in oe.commands)
    assert not any(a[0] in ("dnf", "rpm") for a in deb.commands)
    assert "installing suite packages with dnf" in events.progress()
    assert oe.pytest_runs[0][1]["LEAPFROG_MISSING_PACKAGES"] == "python3-torch"
    assert deb.pytest_runs[0][1]["LEAPFROG_MISSING_PACKAGES"] == ""
    info = run.target("oe")
    assert info is not None
    assert info.facts is not None
    assert info.facts.extra["missing_packages"] == "python3-torch"
