from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness.cli import main


def test_list_targets_and_suites(project_root: Path) -> None:
    r = CliRunner().invoke(main, ["--root", str(project_root), "list", "targets"])
    assert r.exit_code == 0
    assert "debian-trixie-riscv64" in r.output
    r = CliRunner().invoke(main, ["--root", str(project_root), "list", "suites"])
    assert r.exit_code == 0
    assert "platform" in r.output


def test_unknown_target_is_exit_2_with_suggestion(project_root: Path) -> None:
    r = CliRunner().invoke(main, ["--root", str(project_root), "run", "-t", "debian-trixie-riscv46", "-s", "platform"])
    assert r.exit_code == 2
    assert 'did you mean "debian-trixie-riscv64"' in r.output
    assert "Traceback" not in r.output


def test_bad_shard_is_exit_2(project_root: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["--root", str(project_root), "run", "-t", "native", "--shard", "4/3", "--out", str(tmp_path)]
    )
    assert r.exit_code == 2
    assert "--shard" in r.output


def test_broken_target_file_is_exit_2(tmp_path: Path, project_root: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "bad.toml").write_text('kind = "native"\nfoo = 1\n')
    r = CliRunner().invoke(
        main, ["--targets-dir", str(tmp_path / "t"), "--suites-dir", str(project_root / "suites"), "list", "targets"]
    )
    assert r.exit_code == 2
    assert "bad.toml" in r.output
    assert '"foo"' in r.output


def test_run_native_writes_all_reports(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    write_suite("mini", {"test_m.py": "def test_a(metrics):\n    metrics['v'] = 1\n"})
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "native.toml").write_text('kind = "native"\n')
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["--root", str(tmp_path), "run", "-t", "native", "-s", "mini", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["cases.jsonl", "index.html", "junit-native.xml", "results.json"]


def test_doctor_reports_each_check(project_root: Path) -> None:
    r = CliRunner().invoke(main, ["--root", str(project_root), "doctor", "--target", "native"])
    assert "qemu-riscv64-static" in r.output
    assert "binfmt riscv64" in r.output
    assert r.exit_code == 0  # native needs nothing


def test_printable_neutralises_terminal_escapes() -> None:
    from harness.cli.show import printable

    assert printable("a\x1b[31mred\x00\tb\n") == "a\\x1b[31mred\\x00\tb\\x0a"


def test_a_cell_that_could_not_run_for_a_reason_is_exit_1_not_a_silent_pass() -> None:
    from harness.model import CaseResult, CellResult, Run, Status, Verdict
    from harness.workflow import exit_code

    ok = CellResult("native", "project:x", Verdict.COMPATIBLE, [CaseResult("t.py::a", Status.PASSED, 0.1)])
    lacking = CellResult("rv", "project:x", Verdict.NOT_RUN, message='"tensorflow" has no riscv64 build')
    interrupted = CellResult("rv", "project:x", Verdict.NOT_RUN)
    assert exit_code(Run(run_id="r", started="", cells=[ok, lacking])) == 1
    assert exit_code(Run(run_id="r", started="", cells=[ok, interrupted])) == 0
