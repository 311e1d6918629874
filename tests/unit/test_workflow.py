"""harness.workflow: each step from `leapfrog run`'s options to an exit code, called without the CLI."""

from __future__ import annotations

import datetime as _dt
import sqlite3
from pathlib import Path

import pytest

from harness import workflow as wf
from harness.config import Project, load_project
from harness.doctor import Check
from harness.errors import ConfigError
from harness.model import CaseResult, CellResult, Run, Status, TargetInfo, Verdict
from harness.triage import parse_classes

RV = """\
kind = "chroot"
description = "riscv64"
{default}
[image]
distro = "debian"
release = "trixie"
arch = "riscv64"
"""


@pytest.fixture
def project(tmp_path: Path, write_suite) -> Project:  # type: ignore[no-untyped-def]
    write_suite("mini", {"test_m.py": "def test_a():\n    pass\n"})
    write_suite("host", {"test_h.py": "def test_h():\n    pass\n"}, toml='kind = "host-driven"\n')
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "native.toml").write_text('kind = "native"\n')
    (targets / "quiet.toml").write_text('kind = "native"\ndefault = false\n')
    (targets / "rv.toml").write_text(RV.format(default=""))
    (targets / "rv-docker.toml").write_text(RV.format(default="").replace('"chroot"', '"docker"'))
    return load_project(tmp_path)


def _checks(monkeypatch: pytest.MonkeyPatch, *checks: Check) -> None:
    import harness.doctor

    monkeypatch.setattr(harness.doctor, "run_checks", lambda: list(checks))


# ------------------------------------------------------------------ selection


def test_default_targets_are_the_default_native_and_chroot_ones_that_can_run_here(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _checks(monkeypatch, Check("root", True, "yes", kinds=("chroot",)))
    assert wf.runnable_default(project) == ["native", "rv"]  # not docker, not default = false
    _checks(monkeypatch, Check("qemu-riscv64-static", False, "missing", kinds=("chroot",)))
    assert wf.runnable_default(project) == ["native"]


def test_selection_defaults_to_runnable_targets_and_in_target_suites(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _checks(monkeypatch)
    assert wf.select(project, wf.RunRequest()) == (["native", "rv"], ["mini"])
    assert wf.select(project, wf.RunRequest(targets=["quiet"], suites=["host"])) == (["quiet"], ["host"])
    assert wf.select(project, wf.RunRequest(projects=[Path("demo")])) == (["native", "rv"], [])


def test_a_resume_takes_the_interrupted_runs_targets_and_suites_but_not_its_projects(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _checks(monkeypatch)
    previous = Run(
        run_id="r",
        started="",
        targets=[TargetInfo("quiet", "native")],
        cells=[CellResult("quiet", "host", Verdict.NOT_RUN), CellResult("quiet", "project:demo", Verdict.NOT_RUN)],
    )
    assert wf.select(project, wf.RunRequest(), previous) == (["quiet"], ["host"])
    assert wf.select(project, wf.RunRequest(suites=["mini"]), previous) == (["quiet"], ["mini"])


def test_no_runnable_target_is_a_config_error_naming_doctor(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    _checks(monkeypatch, Check("root", False, "no", kinds=("native", "chroot")))
    with pytest.raises(ConfigError, match="no target can run on this host; see `leapfrog doctor`"):
        wf.select(project, wf.RunRequest())


def test_the_output_folder_is_the_resumed_one_then_out_then_a_timestamp(project: Project, tmp_path: Path) -> None:
    now = _dt.datetime(2025, 3, 4, 5, 6, 7)
    assert wf.out_folder(project, wf.RunRequest(), now) == project.root / "reports" / "20250304-050607"
    assert wf.out_folder(project, wf.RunRequest(out=tmp_path / "o"), now) == tmp_path / "o"
    assert wf.out_folder(project, wf.RunRequest(out=tmp_path / "o", resume=tmp_path / "r"), now) == tmp_path / "r"


def test_known_issues_come_from_the_named_file_or_the_roots_default(project: Project, tmp_path: Path) -> None:
    assert wf.known_issues(project, None) == []  # no known-issues.toml at the root
    (project.root / "known-issues.toml").write_text('[[issue]]\ncase = "test_m.py::test_a"\nreason = "upstream bug"\n')
    (issue,) = wf.known_issues(project, None)
    assert issue.reason == "upstream bug"
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: known-issues file not found"):
        wf.known_issues(project, missing)


# ------------------------------------------------------------------ prepare


def test_prepare_turns_the_options_into_a_plan_and_run_options(project: Project, tmp_path: Path) -> None:
    req = wf.RunRequest(targets=["native"], suites=["mini"], out=tmp_path / "o", jobs=3, reruns=2, case_timeout=30.0)
    prepared = wf.prepare(project, req)
    assert [c.key for c in prepared.plan.cells] == [("native", "mini")]
    o = prepared.options
    assert (o.out, o.jobs, o.retries, o.reruns, o.case_timeout, o.auto_timeout) == (
        tmp_path / "o",
        3,
        1,
        2,
        30.0,
        False,
    )
    assert prepared.projects == []


def test_an_auto_case_timeout_reads_slowdowns_and_warns_when_the_history_is_unreadable(
    project: Project, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database" * 100)
    said: list[str] = []
    req = wf.RunRequest(targets=["native", "rv"], suites=["mini"], out=tmp_path / "o", case_timeout="auto", db=bad)
    o = wf.prepare(project, req, warn=said.append).options
    assert (o.case_timeout, o.auto_timeout, o.history_slowdowns) == (None, True, {})
    (warning,) = said
    assert "auto case timeouts do not use the history" in warning
    assert "bad.sqlite" in warning


def test_extra_or_group_without_a_project_is_a_config_error(project: Project, tmp_path: Path) -> None:
    req = wf.RunRequest(targets=["native"], suites=["mini"], out=tmp_path / "o", extras=["cpu"])
    with pytest.raises(ConfigError, match="--extra and --group choose dependencies of a --project"):
        wf.prepare(project, req)


def test_a_bad_shard_is_a_config_error_before_anything_runs(project: Project, tmp_path: Path) -> None:
    req = wf.RunRequest(targets=["native"], suites=["mini"], out=tmp_path / "o", shard="4/3")
    with pytest.raises(ConfigError, match="--shard"):
        wf.prepare(project, req)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ execute, finish


def test_a_native_run_executes_and_finish_writes_the_report_without_history(project: Project, tmp_path: Path) -> None:
    req = wf.RunRequest(targets=["native"], suites=["mini"], out=tmp_path / "o")
    runner = wf.make_runner(wf.prepare(project, req))
    result, interrupted = wf.execute(runner)
    assert (interrupted, [c.verdict for c in result.cells]) == (False, [Verdict.COMPATIBLE])
    done = wf.finish(project, result, tmp_path / "o", db=tmp_path / "never.sqlite", record=False)
    assert sorted(p.name for p in done.written) == ["index.html", "junit-native.xml"]
    assert (done.comparison, done.report_error) == (None, None)
    assert not (tmp_path / "never.sqlite").exists()  # record=False: the history is not touched


def test_finish_returns_a_report_error_after_recording_the_run(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.report
    from harness import history

    def boom(*_a: object, **_k: object) -> str:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(harness.report, "render_html", boom)
    run = _run(CellResult("native", "mini", Verdict.COMPATIBLE, [CaseResult("t.py::a", Status.PASSED, 0.1)]))
    db = tmp_path / "h.sqlite"
    (tmp_path / "o").mkdir()
    done = wf.finish(project, run, tmp_path / "o", db=db, record=True)
    assert done.report_error is not None
    assert "index.html" in str(done.report_error)
    assert [p.name for p in done.written] == ["junit-native.xml"]
    assert history.run_ids(db=db) == ["r"]


def test_a_locked_history_is_a_warning_and_the_report_is_written(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import history

    def locked(*_a: object, **_k: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(history, "record", locked)
    said: list[str] = []
    (tmp_path / "o").mkdir()
    run = _run(CellResult("native", "mini", Verdict.COMPATIBLE, [CaseResult("t.py::a", Status.PASSED, 0.1)]))
    done = wf.finish(project, run, tmp_path / "o", db=tmp_path / "h.sqlite", record=True, warn=said.append)
    assert done.report_error is None
    assert (tmp_path / "o" / "index.html").exists()
    (warning,) = said
    assert warning.startswith("this run was not recorded in the history (database is locked)")
    assert f"--resume {tmp_path / 'o'}" in warning


def test_settings_are_the_suites_settings_tables_of_suites_in_the_run(project: Project, write_suite) -> None:  # type: ignore[no-untyped-def]
    write_suite("tuned", {"test_t.py": ""}, toml="[settings]\nqps = 5\n")
    p = load_project(project.root)
    run = Run(
        run_id="r", started="", cells=[CellResult("native", s, Verdict.COMPATIBLE) for s in ("tuned", "mini", "gone")]
    )
    assert wf.settings(p, run) == {"tuned": {"qps": 5}}
    assert wf.settings(None, run) == {}


# ------------------------------------------------------------------ exit code


def _run(*cells: CellResult) -> Run:
    return Run(
        run_id="r",
        started="2025-01-01T00:00:00+00:00",
        baseline="native",
        targets=[TargetInfo(t, "native") for t in dict.fromkeys(c.target for c in cells)],
        cells=list(cells),
    )


def _case(name: str, status: Status) -> CaseResult:
    return CaseResult(name, status, 0.1)


def test_exit_code_is_2_for_an_infra_error_before_anything_else() -> None:
    failed = CellResult("rv", "s", Verdict.INCOMPATIBLE, [_case("t.py::a", Status.FAILED)])
    infra = CellResult("rv", "t", Verdict.INFRA_ERROR, message="QEMU died")
    assert wf.exit_code(_run(failed, infra)) == wf.EXIT_ERROR == 2
    assert wf.exit_code(_run(CellResult("rv", "s", Verdict.INCOMPATIBLE))) == wf.EXIT_FAIL == 1  # ran no case


def test_fail_on_decides_which_triage_classes_make_exit_1() -> None:
    base = CellResult("native", "s", Verdict.COMPATIBLE, [_case("t.py::a", Status.PASSED)])
    port = CellResult("rv", "s", Verdict.INCOMPATIBLE, [_case("t.py::a", Status.FAILED)])
    run = _run(base, port)  # fails on the target only: target-only
    assert wf.exit_code(run) == 1
    assert wf.exit_code(run, parse_classes("everywhere")) == 0
    assert wf.exit_code(run, wf.fail_classes("target-only")) == 1
    assert wf.exit_code(run, wf.fail_classes("slow,unknown")) == 0
    assert wf.fail_classes(None) == wf.fail_classes("slow,emulator-suspect,target-only,unknown,baseline-only")
    with pytest.raises(ConfigError, match="no triage class 'target_only'"):
        wf.fail_classes("target_only")


def test_a_case_failing_everywhere_is_exit_0_by_default() -> None:
    base = CellResult("native", "s", Verdict.INCOMPATIBLE, [_case("t.py::a", Status.FAILED)])
    port = CellResult("rv", "s", Verdict.INCOMPATIBLE, [_case("t.py::a", Status.FAILED)])
    assert wf.exit_code(_run(base, port)) == 0
    assert wf.exit_code(_run(base, port), wf.fail_classes("all")) == 1


# ------------------------------------------------------------------ compare, merge, images


def test_compare_of_a_run_the_history_lacks_is_a_config_error(tmp_path: Path) -> None:
    from harness.history import Rules

    with pytest.raises(ConfigError, match='no run "nope" in the history; see `leapfrog history`'):
        wf.compare_runs("nope", "nada", db=tmp_path / "h.sqlite", rules=Rules())


def test_compare_of_two_report_folders_lists_the_new_failure(tmp_path: Path) -> None:
    import json

    from harness.history import Rules

    before = _run(CellResult("rv", "s", Verdict.COMPATIBLE, [_case("t.py::a", Status.PASSED)]))
    after = _run(CellResult("rv", "s", Verdict.INCOMPATIBLE, [_case("t.py::a", Status.FAILED)]))
    after.run_id = "r2"
    for name, run in (("a", before), ("b", after)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(run.to_dict()))
    comparison = wf.compare_runs(str(tmp_path / "a"), str(tmp_path / "b"), db=tmp_path / "h.sqlite", rules=Rules())
    assert (comparison.base_run_id, comparison.run_id) == ("r", "r2")
    assert {(c.kind, c.case) for c in comparison.changes} >= {("new-failure", "t.py::a")}


def test_merge_writes_one_report_of_the_shards(tmp_path: Path) -> None:
    import json

    one = _run(CellResult("native", "s", Verdict.COMPATIBLE, [_case("t.py::a", Status.PASSED)]))
    two = _run(CellResult("native", "u", Verdict.COMPATIBLE, [_case("u.py::b", Status.PASSED)]))
    for name, run in (("1", one), ("2", two)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(run.to_dict()))
    merged = wf.merge(None, [tmp_path / "1", tmp_path / "2"], tmp_path / "m")
    assert [(c.target, c.suite) for c in merged.cells] == [("native", "s"), ("native", "u")]
    assert {"results.json", "index.html", "junit-native.xml"} <= {p.name for p in (tmp_path / "m").iterdir()}
    assert wf.exit_code(merged) == 0


def test_an_image_name_not_in_the_cache_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "cache"))
    assert wf.pick_images([], every=True) == []
    with pytest.raises(ConfigError, match=r'no cached image "debian-trixe"; see `leapfrog images list`'):
        wf.pick_images(["debian-trixe"])
