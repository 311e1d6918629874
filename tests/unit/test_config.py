from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_project, load_suite, load_target
from harness.errors import ConfigError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_shipped_targets_and_suites_load(project_root: Path) -> None:
    p = load_project(project_root)
    assert {"native", "debian-trixie-riscv64", "debian-trixie-riscv64-rvv"} <= set(p.targets)
    assert "platform" in p.suites
    rvv = p.targets["debian-trixie-riscv64-rvv"]
    assert rvv.kind == "chroot"
    assert rvv.options.cpu == "rv64,v=true,vlen=256,vext_spec=v1.0"
    assert rvv.arch == "riscv64"
    assert rvv.image is not None
    assert rvv.image.release == "trixie"


def test_unknown_key_names_file_key_and_suggests(tmp_path: Path) -> None:
    p = write(tmp_path, "t.toml", 'kind = "chroot"\ncpuu = "rv64"\n[image]\ndistro = "debian"\n')
    with pytest.raises(ConfigError) as e:
        load_target(p)
    msg = str(e.value)
    assert str(p) in msg
    assert '"cpuu"' in msg
    assert 'did you mean "cpu"' in msg


def test_unknown_kind_suggests(tmp_path: Path) -> None:
    p = write(tmp_path, "t.toml", 'kind = "chrot"\n')
    with pytest.raises(ConfigError, match='did you mean "chroot"'):
        load_target(p)


def test_missing_kind(tmp_path: Path) -> None:
    p = write(tmp_path, "t.toml", 'description = "x"\n')
    with pytest.raises(ConfigError, match='missing required key "kind"'):
        load_target(p)


def test_wrong_type_names_expected_type(tmp_path: Path) -> None:
    p = write(tmp_path, "t.toml", 'kind = "chroot"\ncpu = 5\n[image]\ndistro = "debian"\n')
    with pytest.raises(ConfigError, match='key "cpu" must be a string, not 5'):
        load_target(p)


def test_nested_unknown_key_is_dotted(tmp_path: Path) -> None:
    p = write(tmp_path, "t.toml", 'kind = "chroot"\n[image]\ndistro = "debian"\nrelase = "trixie"\n')
    with pytest.raises(ConfigError, match=r'unknown key "image.relase" \(did you mean "release"\?\)'):
        load_target(p)


def test_unknown_distro(tmp_path: Path) -> None:
    p = write(tmp_path, "t.toml", 'kind = "chroot"\n[image]\ndistro = "debain"\n')
    with pytest.raises(ConfigError, match='did you mean "debian"'):
        load_target(p)


def test_chroot_needs_image(tmp_path: Path) -> None:
    p = write(tmp_path, "t.toml", 'kind = "chroot"\n')
    with pytest.raises(ConfigError, match=r"needs an \[image\] table"):
        load_target(p)


def test_bad_toml_is_config_error(tmp_path: Path) -> None:
    p = write(tmp_path, "t.toml", 'kind = "native\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_target(p)


def test_suite_errors(tmp_path: Path) -> None:
    write(tmp_path, "s/suite.toml", 'kind = "in-targit"\n')
    with pytest.raises(ConfigError, match='did you mean "in-target"'):
        load_suite(tmp_path / "s")
    write(tmp_path, "t/suite.toml", "timeout = -1\n")
    with pytest.raises(ConfigError, match='"timeout" must be a positive'):
        load_suite(tmp_path / "t")
    write(tmp_path, "u/suite.toml", '[packages]\ndebain = ["x"]\n')
    with pytest.raises(ConfigError, match=r'unknown key "packages.debain" \(did you mean "debian"\?\)'):
        load_suite(tmp_path / "u")
    with pytest.raises(ConfigError, match="file not found"):
        load_suite(tmp_path / "missing")
    write(tmp_path, "p/suite.toml", "ports = [8080, 70000]\n")
    with pytest.raises(ConfigError, match=r'suite.toml: key "ports" holds 70000, which is not a TCP port'):
        load_suite(tmp_path / "p")


def test_suite_ports_reach_the_plan(project_root: Path) -> None:
    from harness.plan import make_plan

    p = load_project(project_root)
    assert p.suites["serving"].ports == [18080]
    plan = make_plan(p.pick_targets(["native", "debian-trixie-riscv64-docker"]), p.pick_suites(["platform", "serving"]))
    assert plan.ports_for("debian-trixie-riscv64-docker") == [18080]
    assert make_plan(p.pick_targets(["native"]), p.pick_suites(["platform"])).ports_for("native") == []


def test_pick_unknown_suite_suggests(project_root: Path) -> None:
    p = load_project(project_root)
    with pytest.raises(ConfigError, match='unknown suite "platfrom" \\(did you mean "platform"\\?\\)'):
        p.pick_suites(["platfrom"])
    with pytest.raises(ConfigError, match="known targets"):
        p.pick_targets(["nope"])


def test_a_file_with_non_utf8_bytes_is_a_config_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "t.toml"
    p.write_bytes(b'kind = "chroot"\ndescription = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"t\.toml: not valid TOML: byte \d+ is not UTF-8.*save the file as UTF-8"):
        load_target(p)
    write(tmp_path, "s/suite.toml", "")
    (tmp_path / "s/suite.toml").write_bytes(b'description = "\xff"\n')
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_suite(tmp_path / "s")


@pytest.mark.parametrize("value", ["nan", "+nan", "inf", "-inf"])
def test_nan_and_infinity_are_refused(tmp_path: Path, value: str) -> None:
    write(tmp_path, "s/suite.toml", f"timeout = {value}\n")
    with pytest.raises(ConfigError, match=rf'suite.toml: key "timeout" holds .*{value.lstrip("+-")}.*finite number'):
        load_suite(tmp_path / "s")
    write(tmp_path, "c/suite.toml", f"case_timeout = 10\n[settings]\nrepeats = {value}\n")
    with pytest.raises(ConfigError, match='key "settings" holds'):
        load_suite(tmp_path / "c")
    p = write(tmp_path, "t.toml", f'kind = "ssh"\nhost = "h"\nconnect_timeout = {value}\n')
    with pytest.raises(ConfigError, match='key "connect_timeout" holds'):
        load_target(p)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('release = "--hook-dir=/tmp/x"', "image.release"),
        ('packages = ["python3", "--customize-hook=touch /x"]', "image.packages"),
        ('packages = ["Python3"]', "image.packages"),
        ('arch = "-riscv64"', "image.arch"),
        ('mirror = "--setup-hook=x"', "image.mirror"),
        ('sha256 = "abc"', "image.sha256"),
    ],
)
def test_image_names_that_a_tool_would_read_as_options_are_refused(tmp_path: Path, table: str, key: str) -> None:
    p = write(tmp_path, "t.toml", f'kind = "chroot"\n[image]\ndistro = "debian"\n{table}\n')
    with pytest.raises(ConfigError) as e:
        load_target(p)
    assert str(p) in str(e.value)
    assert f'key "{key}"' in str(e.value)


def test_suite_package_names_are_checked_per_distro(tmp_path: Path) -> None:
    write(tmp_path, "s/suite.toml", '[packages]\ndebian = ["-oDebug::pkgProblemResolver=1"]\n')
    with pytest.raises(ConfigError, match=r'suite.toml: key "packages.debian" holds .*not a valid debian package name'):
        load_suite(tmp_path / "s")
    write(tmp_path, "o/suite.toml", '[packages]\nopeneuler = ["--setopt=x"]\n')
    with pytest.raises(ConfigError, match=r'key "packages\.openeuler"'):
        load_suite(tmp_path / "o")
    # Real names pass: an arch qualifier for Debian, upper case for RPM.
    write(tmp_path, "ok/suite.toml", '[packages]\ndebian = ["libstdc++6:riscv64"]\nopeneuler = ["python3-PyYAML"]\n')
    assert load_suite(tmp_path / "ok").packages.openeuler == ["python3-PyYAML"]


def test_mmdebstrap_argv_refuses_option_like_names_and_ends_options_before_positionals(tmp_path: Path) -> None:
    from harness.images.debian import mmdebstrap_argv

    mirror = "http://deb.debian.org/debian"
    argv = mmdebstrap_argv("trixie", "riscv64", mirror, ["python3"], tmp_path / "root")
    assert argv[-4:] == ["--", "trixie", str(tmp_path / "root"), mirror]
    with pytest.raises(ConfigError, match=r'key "image\.release"'):
        mmdebstrap_argv("--hook-dir=/x", "riscv64", mirror, ["python3"], tmp_path)
    with pytest.raises(ConfigError, match='key "packages"'):
        mmdebstrap_argv("trixie", "riscv64", mirror, ["python3", "-x"], tmp_path)


def test_a_broken_target_file_breaks_only_what_uses_it(tmp_path: Path, project_root: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from harness.cli import main

    write(tmp_path, "targets/native.toml", 'kind = "native"\n')
    write(tmp_path, "targets/broken.toml", 'kind = "native"\nfoo = 1\n')
    p = load_project(targets_dir=tmp_path / "targets", suites_dir=project_root / "suites")
    assert [t.kind for t in p.pick_targets(["native"])] == ["native"]
    with pytest.raises(ConfigError, match=r'broken\.toml: unknown key "foo"'):
        p.pick_targets(["broken"])
    # Through the CLI: a run of the good target works; listing every target reports the broken one.
    write_suite("mini", {"test_m.py": "def test_a():\n    pass\n"})
    run = CliRunner().invoke(
        main, ["--root", str(tmp_path), "run", "-t", "native", "-s", "mini", "--out", str(tmp_path / "out")]
    )
    assert run.exit_code == 0, run.output
    listed = CliRunner().invoke(main, ["--root", str(tmp_path), "list", "targets"])
    assert listed.exit_code == 2
    assert "broken.toml" in listed.output
