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
