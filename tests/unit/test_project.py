"""harness.project: a user's project as a suite (no network: wheels are made here, sources are fakes)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from harness import deps, model_deps, project
from harness.config import ImageSpec, SuiteConfig, TargetConfig, load_project
from harness.model import Verdict
from harness.plan import Plan, PlannedCell
from harness.runner import Runner, RunOptions

TRIXIE = deps.Platform(
    "debian-trixie-riscv64", "debian", "trixie", "riscv64", (3, 13), deps.riscv64_tags((3, 13), (2, 41))
)


def make_wheel(folder: Path, name: str, version: str, requires: list[str], tag: str = "py3-none-any") -> Path:
    """A minimal wheel: one module, METADATA with Requires-Dist, and a .data/purelib file."""
    path = folder / f"{name}-{version}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    meta += "Provides-Extra: fast\n"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
        z.writestr(f"{name}-{version}.data/purelib/{name}_extra.py", "X = 1\n")
        z.writestr(f"{name}-{version}.data/scripts/{name}-cli", "#!/bin/sh\n")
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def _pypi_with_wheel(name: str, version: str, filename: str) -> dict[str, Any]:
    f = {"filename": filename, "packagetype": "bdist_wheel", "url": f"https://x.invalid/{filename}"}
    return {"releases": {version: [{**f, "digests": {"sha256": "0" * 64}, "requires_python": None, "yanked": False}]}}


def _built(tmp_path: Path, requires: list[str], tag: str = "py3-none-any") -> project.Built:
    wheel = make_wheel(tmp_path, "demo", "1.0", requires, tag)
    return project.Built("demo", "1.0", tmp_path, wheel, [Requirement(r) for r in requires])


def test_distro_package_first_and_a_wheels_own_requirements_resolved_in_turn(tmp_path: Path) -> None:
    pure = make_wheel(tmp_path, "purething", "2.0", ["numpy>=1.24", "tinydep ; python_version < '3'"])
    pypi = {"purething": _pypi_with_wheel("purething", "2.0", pure.name)}
    sources = deps.Sources(distro=lambda _p: {"python3-numpy": "1:2.2.4+ds-1"}, pypi=pypi.get)
    downloaded: list[str] = []

    def download(offer: deps.Offer) -> Path:
        downloaded.append(offer.package)
        return tmp_path / offer.package

    plan = project.plan_target(_built(tmp_path, ["purething>=2"]), TRIXIE, sources, download)
    assert plan.not_run == ""
    assert downloaded == [pure.name]
    assert plan.packages == ["python3-numpy"]  # purething's own requirement, from Debian
    assert [r.name for r in plan.resolutions] == ["purething", "numpy"]  # tinydep's marker is false


def test_a_requirement_nothing_provides_makes_the_cell_not_run_naming_it(tmp_path: Path) -> None:
    sources = deps.Sources(distro=lambda _p: {"python3-numpy": "1:2.2.4+ds-1"}, pypi=lambda _n: None)
    plan = project.plan_target(_built(tmp_path, ["numpy>=3", "tensorflow"]), TRIXIE, sources)
    assert plan.not_run.startswith("a dependency cannot be had on this target")
    assert '"numpy>=3" has nothing for this target: debian python3-numpy 1:2.2.4+ds-1 (does not fit)' in plan.not_run
    assert '"tensorflow" has nothing for this target: nothing' in plan.not_run


def test_sdist_only_is_not_run_and_so_is_a_compiled_project_off_native(tmp_path: Path) -> None:
    sdist = {
        "releases": {
            "1.0": [{"filename": "x-1.0.tar.gz", "packagetype": "sdist", "url": "u", "digests": {"sha256": ""}}]
        }
    }
    sources = deps.Sources(distro=lambda _p: {}, pypi=lambda _n: sdist)
    plan = project.plan_target(_built(tmp_path, ["x"]), TRIXIE, sources)
    assert "has only an sdist for this target" in plan.not_run
    compiled = _built(tmp_path, [], tag="cp311-cp311-manylinux_2_17_x86_64")
    assert "has compiled parts" in project.plan_target(compiled, TRIXIE, sources).not_run


def test_unpack_wheel_puts_purelib_at_the_top_and_leaves_scripts_out(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0", [])
    site = tmp_path / "site"
    project.unpack_wheel(wheel, site)
    assert (site / "demo" / "__init__.py").is_file()
    assert (site / "demo_extra.py").is_file()
    assert not any("cli" in p.name for p in site.rglob("*"))
    bad = tmp_path / "bad-1.0-py3-none-any.whl"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../escape.py", "")
    with pytest.raises(project.ProjectError, match="points outside the wheel"):
        project.unpack_wheel(bad, tmp_path / "site2")
    assert not (tmp_path / "escape.py").exists()


def test_an_sdist_cannot_write_outside_its_folder(tmp_path: Path) -> None:
    archive = tmp_path / "evil-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        data = b"x"
        info = tarfile.TarInfo("../../evil.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    with pytest.raises(project.ProjectError, match="cannot unpack it as an sdist"):
        project.unpack_sdist(archive, tmp_path / "out")
    assert not (tmp_path.parent / "evil.txt").exists()


def test_requires_dist_keeps_only_the_extras_asked_for(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "demo", "1.0", ["numpy", "orjson ; extra == 'fast'", "rich ; extra == 'cli'"])
    meta = project.wheel_metadata(wheel)
    assert [r.name for r in project.requires_dist(meta, [], "w")] == ["numpy"]
    assert [r.name for r in project.requires_dist(meta, ["fast"], "w")] == ["numpy", "orjson"]
    with pytest.raises(project.ConfigError, match="no extra gpu"):
        project.requires_dist(meta, ["gpu"], "w")


def test_suite_folder_holds_tests_config_site_and_the_projects_conftest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "tests").mkdir(parents=True)
    (src / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    (src / "test_top.py").write_text("def test_top():\n    pass\n")
    (src / "conftest.py").write_text("import pytest\n\n@pytest.fixture\ndef answer():\n    return 42\n")
    (src / "pytest.ini").write_text("[pytest]\n")
    (src / "setup.py").write_text("")
    wheel = make_wheel(tmp_path, "demo", "1.0", [])
    built = project.Built("demo", "1.0", src, wheel, [])
    folder = tmp_path / "suite"
    project.write_suite(built, project.TargetPlan("t"), folder)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "_leapfrog_project_conftest.py",
        "_leapfrog_site",
        "conftest.py",
        "pytest.ini",
        "test_top.py",
        "tests",
    ]
    assert (folder / "_leapfrog_site" / "demo" / "__init__.py").is_file()
    conftest = (folder / "conftest.py").read_text()
    compile(conftest, "conftest.py", "exec")
    assert 'collect_ignore = ["_leapfrog_site"]' in conftest
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(project.ConfigError, match="no tests found"):
        project.write_suite(project.Built("demo", "1.0", empty, wheel, []), project.TargetPlan("t"), tmp_path / "s2")


def test_a_not_run_project_cell_is_recorded_with_its_reason_and_the_target_never_starts(
    tmp_path: Path, project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target: TargetConfig = load_project(project_root).targets["debian-trixie-riscv64"]
    assert target.image == ImageSpec()
    reason = 'a dependency cannot be had on this target: "tensorflow" has nothing for this target: nothing.'
    suite = SuiteConfig(
        name="project:demo",
        path=tmp_path,
        description="",
        kind="in-target",
        timeout=60,
        case_timeout=30,
        key_packages=[],
        packages=project.SuitePackages(),
        settings={},
        not_run=reason,
    )

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("the target was started for a not-run cell")

    monkeypatch.setattr(Runner, "start_target", never)
    run = Runner(Plan([PlannedCell(target, suite)]), RunOptions(out=tmp_path / "out")).execute()
    (cell,) = run.cells
    assert (cell.verdict, cell.message) == (Verdict.NOT_RUN, reason)


def test_a_project_suite_name_is_printed_as_written_not_as_an_emoji(capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import show

    show.Progress().event("cell-start", {"target": "native", "suite": "project:six", "attempt": 1})
    assert "native / project:six: running" in capsys.readouterr().err


def test_plan_gives_each_projects_dependency_table_for_results_json(
    tmp_path: Path, project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table the run report shows: one cleaned column per target, as `leapfrog deps --json` has it."""
    targets = load_project(project_root).targets
    src = tmp_path / "src"
    (src / "tests").mkdir(parents=True)
    (src / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    built = project.Built("demo", "1.0", src, make_wheel(tmp_path, "demo", "1.0", ["numpy>=1.24"]), [])
    built.requirements.append(Requirement("numpy>=1.24"))
    monkeypatch.setattr(project, "prepare", lambda *_a, **_k: built)
    index = deps.IndexInfo("http://deb.example/Packages.xz", "today", "now", "gpgv")

    class Recorded(deps.LiveSources):
        def sources(self) -> deps.Sources:
            self.indexes[("debian", "trixie", "riscv64")] = ({"python3-numpy": "1:2.2.4+ds-1"}, index)
            return deps.Sources(
                distro=lambda _p: {"python3-numpy": "1:2.2.4+ds-1"},
                pypi=lambda _n: None,
                installed=lambda _p, _n: "2.3.1",
            )

    picked = [targets["native"], targets["debian-trixie-riscv64"]]
    cells, tables, pending = project.plan([src], picked, tmp_path / "work", sources=Recorded())
    assert pending == []  # nothing to build in a target without --build-in-target
    assert [c.key for c in cells] == [("native", "project:demo"), ("debian-trixie-riscv64", "project:demo")]
    (table,) = tables
    assert (table.suite, table.version, table.source) == ("project:demo", "1.0", str(src))
    native, rv = table.targets
    assert (native["target"], native["requirements"][0]["choice"]) == ("native", "installed")
    assert (rv["distro"], rv["arch"], rv["index"]["url"]) == ("debian", "riscv64", index.url)
    (numpy,) = rv["requirements"]
    assert (numpy["choice"], numpy["offers"][0]["package"]) == ("distro", "python3-numpy")
    assert rv == model_deps.clean_deps_column(rv)  # already in the shape results.json reads back
    assert (model_deps.ProjectDeps.from_dict(table.to_dict()) or table).targets == table.targets
