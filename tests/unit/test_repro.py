"""``leapfrog repro``: the command line it prints, what it takes from a report, and a native run of one case."""

from __future__ import annotations

import html
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness import repro as rp
from harness import terminal as tm
from harness.config import TargetConfig, load_suite
from harness.errors import ConfigError, ImageError
from harness.model import CaseResult, CellResult, Run, Status, TargetInfo, Verdict
from harness.plan import make_plan
from harness.report import render_all
from harness.runner import Runner, RunOptions
from harness.targets.native import NativeTarget
from tests.conftest import ROOT, with_options

RV = "debian-trixie-riscv64"


def case(name: str, status: Status, message: str = "") -> CaseResult:
    return CaseResult(name=name, status=status, duration=0.1, message=message)


def two_target_run(name: str = "test_a.py::test_x", *, argv: list[str] | None = None) -> Run:
    return Run(
        run_id="r1",
        started="2025-01-01T00:00:00+00:00",
        argv=argv or [],
        baseline="native",
        targets=[TargetInfo("native", "native"), TargetInfo(RV, "chroot", image="debian-trixie-riscv64-0123")],
        cells=[
            CellResult("native", "s", Verdict.COMPATIBLE, [case(name, Status.PASSED)]),
            CellResult(RV, "s", Verdict.INCOMPATIBLE, [case(name, Status.FAILED, "assert 'riscv64' == 'x86_64'")]),
        ],
    )


def test_a_case_that_ran_under_an_auto_timeout_is_reproduced_under_the_same_one() -> None:
    run = two_target_run(argv=["leapfrog", "run", "--case-timeout", "auto"])
    pick = rp.pick_case(run, "test_a.py::test_x")
    assert rp.recorded_case_timeout(run, pick) is None  # nothing recorded: the suite's own
    run.cells[1].cases[0].timeout = {"seconds": 35.6, "source": "auto"}
    assert rp.recorded_case_timeout(run, pick) == 35.6
    run.cells[1].cases[0].timeout = {"seconds": float("nan")}  # forged: ignored
    assert rp.recorded_case_timeout(run, pick) is None


# ------------------------------------------------------------------ the command line


@pytest.mark.parametrize(
    "name",
    ["test_a.py::test_x", "test_a.py::test_x[it's $(rm -rf /) `x` ; a b]", "-x.py::t", 'q"uote.py::t[\\]'],
)
def test_repro_command_quotes_every_name_so_a_shell_gives_them_back(name: str) -> None:
    line = rp.repro_command("/r/report dir", RV, "my suite", name, options=["--suites-dir", "/s d"])
    words = shlex.split(line)
    assert words[:3] == ["leapfrog", "--suites-dir", "/s d"]
    assert words[-2:] == ["/r/report dir", name]
    assert words[words.index("-t") + 1] == RV
    assert words[words.index("-s") + 1] == "my suite"
    if name.startswith("-"):
        assert words[-3] == "--"  # never read as an option


def test_repro_command_refuses_control_characters_and_carries_shell_and_timeout() -> None:
    assert rp.repro_command("/r", RV, "s", "t.py::x\x1b[31m") == ""
    assert rp.repro_command("/r", RV, "s\n", "t.py::x") == ""
    line = rp.repro_command("/r", RV, "s", "t.py::x", shell=True, case_timeout=30.0)
    assert shlex.split(line) == [
        "leapfrog",
        "repro",
        "-t",
        RV,
        "-s",
        "s",
        "--shell",
        "--case-timeout",
        "30",
        "/r",
        "t.py::x",
    ]


# ------------------------------------------------------------------ what the report says


def test_pick_prefers_the_target_where_the_case_failed() -> None:
    run = two_target_run()
    assert rp.pick_case(run, "test_a.py::test_x") == rp.Pick(RV, "s", "test_a.py::test_x", "failed")
    assert rp.pick_case(run, "test_a.py::test_x", target="native").status == "passed"


def test_pick_names_the_choices_when_the_case_is_ambiguous_and_suggests_when_missing() -> None:
    run = two_target_run()
    run.cells[0].cases[0].status = Status.FAILED  # fails on both: no single choice
    run.cells.append(CellResult(RV, "other", Verdict.INCOMPATIBLE, [case("test_a.py::test_x", Status.FAILED)]))
    with pytest.raises(
        ConfigError, match=r"in 3 cells of results.json; choose one with .*-t debian-trixie-riscv64 -s s"
    ):
        rp.pick_case(run, "test_a.py::test_x")
    with pytest.raises(ConfigError, match=r'no case "test_a.py::test_y".*did you mean'):
        rp.pick_case(run, "test_a.py::test_y")
    with pytest.raises(ConfigError, match="control character"):
        rp.pick_case(run, "test_a.py::test_x\x07")


def test_project_folders_come_from_the_runs_command_line_unless_given(tmp_path: Path) -> None:
    suites = tmp_path / "suites"
    suites.mkdir()
    run = two_target_run(argv=["leapfrog", "--root", str(ROOT), f"--suites-dir={suites}", "run", "--case-timeout", "7"])
    got = rp.project_dirs(run, {"root": None, "targets_dir": None, "suites_dir": None}, "x/results.json")
    assert got == {"root": ROOT, "targets_dir": None, "suites_dir": suites.resolve()}
    given = rp.project_dirs(run, {"root": None, "targets_dir": None, "suites_dir": tmp_path}, "x/results.json")
    assert given["suites_dir"] == tmp_path
    assert rp.recorded_case_timeout(run) == 7.0

    gone = two_target_run(argv=["leapfrog", "--suites-dir", str(tmp_path / "nope"), "run"])
    with pytest.raises(ConfigError, match=r'started with --suites-dir ".*nope", which is not a folder from here'):
        rp.project_dirs(gone, {"root": None, "targets_dir": None, "suites_dir": None}, "x/results.json")


def test_a_case_file_must_lie_inside_the_suite_folder(write_suite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suite = load_suite(write_suite("s", {"test_a.py": "def test_x(): pass\n"}))
    (tmp_path / "outside.py").write_text("def test_x(): pass\n")
    (suite.path / "link.py").symlink_to(tmp_path / "outside.py")
    rp.check_case_path(suite, "test_a.py::test_x[a/../b]")
    for bad in ["../outside.py::test_x", str(tmp_path / "outside.py") + "::test_x", "link.py::test_x", "no.py::t", ""]:
        with pytest.raises(ConfigError, match="is not a file of suite"):
            rp.check_case_path(suite, bad)


def test_the_recorded_chroot_image_is_pinned_or_repro_says_how_to_rebuild_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.config import load_project

    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "cache"))
    cfg = load_project(ROOT).targets[RV]
    said: list[str] = []
    with pytest.raises(ImageError, match=rf"no longer in the cache .* leapfrog images build -t {RV} -s ai,platform"):
        rp.pin_image(cfg, "debian-trixie-riscv64-0123", suites=["ai", "platform"], say=said.append)
    folder = tmp_path / "cache" / "images" / "debian-trixie-riscv64-0123"
    (folder / "rootfs" / "usr").mkdir(parents=True)
    meta = {"key": "0123", "distro": "debian", "release": "trixie", "arch": "riscv64", "mirror": "m", "packages": []}
    (folder / "meta.json").write_text(json.dumps({**meta, "recipe": 1}))
    pinned = rp.pin_image(cfg, "debian-trixie-riscv64-0123", suites=["ai"], say=said.append)
    assert Path(pinned.options.rootfs) == (folder / "rootfs").resolve()
    # A name from results.json is only compared with cached names, never used as a path.
    with pytest.raises(ImageError):
        rp.pin_image(cfg, "../images/debian-trixie-riscv64-0123", suites=["ai"], say=said.append)


def test_exit_code_follows_the_cases_status_now() -> None:
    assert rp.outcome("passed", 0).exit == 0
    assert rp.outcome("xfailed", 0).exit == 0
    assert rp.outcome("failed", 1).exit == 1
    assert rp.outcome("timeout", 1).exit == 1
    assert rp.outcome("", 128 + 11).status == "crashed"
    assert rp.outcome("", 5).exit == 2  # no such case any more


# ------------------------------------------------------------------ the run records its image


def test_the_run_records_the_image_each_target_ran(
    tmp_path: Path, write_suite, native_config: TargetConfig, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    def start(self: NativeTarget) -> None:
        self.image_id = "debian-trixie-riscv64-feed"

    monkeypatch.setattr(NativeTarget, "start", start)
    plan = make_plan([native_config], [load_suite(write_suite("s", {"test_a.py": "def test_x(): pass\n"}))])
    Runner(plan, RunOptions(out=tmp_path / "out")).execute()
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["targets"][0]["image"] == "debian-trixie-riscv64-feed"
    assert Run.from_dict(saved).targets[0].image == "debian-trixie-riscv64-feed"


def test_every_target_only_failure_in_the_html_shows_its_repro_command(tmp_path: Path) -> None:
    name = "test_a.py::test_x[it's <b>]"
    run = two_target_run(name)
    render_all(run, tmp_path)
    page = (tmp_path / "index.html").read_text()
    line = rp.repro_command(tmp_path.resolve(), RV, "s", name)
    assert "it's <b>" not in page  # escaped, never markup
    shown = re.findall(r"again: <code>([^<]*)</code>", page)
    assert [html.unescape(s) for s in shown] == [line]
    assert shlex.split(html.unescape(shown[0]))[-1] == name


# ------------------------------------------------------------------ on the native target, for real

BIG = 200_000  # characters of output: past what results.json keeps of a case (65,536)

SUITE = f"""
import platform

def test_fine():
    pass

def test_prints_a_lot_then_fails():
    print("start-" + "x" * {BIG} + "-end")
    assert platform.machine() == "not-this-one", "the whole output reaches the terminal"
"""


def leapfrog(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture
def native_report(tmp_path: Path, write_suite) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A report of a run of suite "big" on native, as results.json holds it (the case failed there)."""
    folder = write_suite("big", {"test_big.py": SUITE})
    report = tmp_path / "report"
    report.mkdir()
    name = "test_big.py::test_prints_a_lot_then_fails"
    run = Run(
        run_id="r",
        started="2025-01-01T00:00:00+00:00",
        argv=["leapfrog", "--root", str(ROOT), "--suites-dir", str(folder.parent), "run", "-t", "native"],
        targets=[TargetInfo("native", "native")],
        cells=[
            CellResult(
                "native",
                "big",
                Verdict.PARTIAL,
                [case("test_big.py::test_fine", Status.PASSED), case(name, Status.FAILED)],
            )
        ],
    )
    (report / "results.json").write_text(json.dumps(run.to_dict()))
    return report, folder


def test_repro_runs_only_that_case_with_its_whole_output(native_report: tuple[Path, Path], tmp_path: Path) -> None:
    report, _suite = native_report
    done = leapfrog("repro", str(report), "test_big.py::test_prints_a_lot_then_fails", cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "start-" + "x" * BIG + "-end" in done.stdout  # unbounded: all 200,000 characters
    assert "the whole output reaches the terminal" in done.stdout
    assert "1 failed" in done.stdout
    assert "test_fine" not in done.stdout  # only that case ran
    assert "repro: the case failed on native" in done.stderr
    again = done.stdout.strip().splitlines()[-1]
    assert again == "again: " + rp.repro_command(
        report.resolve(), "native", "big", "test_big.py::test_prints_a_lot_then_fails"
    )


def test_repro_of_a_passing_case_exits_0_and_a_missing_case_exits_2(native_report: tuple[Path, Path]) -> None:
    report, suite = native_report
    assert leapfrog("repro", str(report), "test_big.py::test_fine").returncode == 0
    missing = leapfrog("repro", str(report), "test_big.py::test_gone")
    assert missing.returncode == 2
    assert 'has no case "test_big.py::test_gone"' in missing.stderr
    (suite / "test_big.py").unlink()  # the suite changed since the run
    changed = leapfrog("repro", str(report), "test_big.py::test_fine")
    assert changed.returncode == 2
    assert '"test_big.py" is not a file of suite "big"' in changed.stderr


def test_repro_shell_reads_commands_from_a_pipe_at_the_suite_folder(native_report: tuple[Path, Path]) -> None:
    report, _suite = native_report
    done = leapfrog(
        "repro",
        str(report),
        "test_big.py::test_fine",
        "--shell",
        stdin="echo marker-42; ls; echo $LEAPFROG_TARGET; exit\n",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "marker-42" in done.stdout
    assert "test_big.py" in done.stdout  # the shell starts in the suite's folder
    assert "native" in done.stdout  # with the environment the case runs with
    assert "the case runs with:" in done.stderr
    assert (
        done.stdout.strip()
        .splitlines()[-1]
        .endswith("--shell " + shlex.join([str(report.resolve()), "test_big.py::test_fine"]))
    )


def test_repro_refuses_a_folder_without_results(tmp_path: Path) -> None:
    done = leapfrog("repro", str(tmp_path), "t.py::x")
    assert done.returncode == 2
    assert "no results.json there" in done.stderr


# ------------------------------------------------------------------ the commands other backends get


def test_docker_attaches_with_docker_exec_in_the_suite_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.config import load_project
    from harness.targets.docker import DockerTarget

    cfg = load_project(ROOT).targets["debian-trixie-riscv64-docker"]
    target = DockerTarget(with_options(cfg, docker_host="ssh://u@h"))
    target.container_id = "c0ffee"
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **_kw: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 1)

    monkeypatch.setattr(tm.shutil, "which", lambda _name: "/usr/bin/docker")
    monkeypatch.setattr(tm.subprocess, "run", fake_run)
    monkeypatch.setattr(tm.sys.stdin, "isatty", lambda: False)
    env = {"LEAPFROG_TARGET": "x y"}
    assert tm.attached(target, ["python3", "-m", "pytest", "a b"], env=env, cwd="/tmp/l/suite", interactive=False) == 1
    assert tm.attached(target, ["/bin/sh"], env={}, cwd="/tmp/l/suite", interactive=True) == 1
    docker = ["/usr/bin/docker", "-H", "ssh://u@h", "exec"]
    assert seen == [
        [*docker, "-w", "/tmp/l/suite", "-eLEAPFROG_TARGET=x y", "c0ffee", "python3", "-m", "pytest", "a b"],
        [*docker, "-i", "-w", "/tmp/l/suite", "c0ffee", "/bin/sh"],
    ]


def test_ssh_runs_the_command_in_the_folder_with_its_environment_and_no_marker() -> None:
    line = tm.ssh_command(["python3", "-m", "pytest", "a b"], env={"K": "v w"}, cwd="/tmp/x y")
    assert line == "cd -- '/tmp/x y' && exec env -- 'K=v w' python3 -m pytest 'a b'"


def test_a_child_case_is_reproduced_by_running_the_case_that_records_it() -> None:
    cases = {"test_upstream.py::test_upstream[numpy_fft]", "test_a.py::TestX::test_y"}
    child = "test_upstream.py::test_upstream[numpy_fft]::numpy/fft/tests/test_pocketfft.py::TestFFT1D::test_identity"
    assert rp.runnable_node(child, cases) == "test_upstream.py::test_upstream[numpy_fft]"
    assert rp.runnable_node("test_a.py::TestX::test_y", cases) == "test_a.py::TestX::test_y"
    assert rp.runnable_node("test_b.py::test_z", cases) == "test_b.py::test_z"
