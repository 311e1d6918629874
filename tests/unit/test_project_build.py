"""--build-in-target without a target: the plan (toolchain, build requirements, sdists), the error line,
each build's record and a failed build's not-run cell (a scripted fake target; the real thing is in
tests/integration/test_project.py)."""

from __future__ import annotations

import io
import math
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from harness import deps, model_deps, project, project_build, project_sdist
from harness.config import ImageSpec, SuiteConfig, SuitePackages, TargetConfig
from harness.errors import ConfigError
from harness.plan import Plan, PlannedCell
from harness.targets import Completed
from tests.unit.test_project import TRIXIE, _built, make_wheel

GCC = """\
running build_ext
building 'rvbroken' extension
rvbroken.c:4:2: error: #error "rvbroken does not build on RISC-V"
    4 | #error "rvbroken does not build on RISC-V"
rvbroken.c:9:1: error: expected ';' before '}' token
error: command '/usr/bin/riscv64-linux-gnu-gcc' failed with exit code 1
  error: subprocess-exited-with-error
ERROR: Failed to build installable wheels for some pyproject.toml based projects (rvbroken)
"""


def test_first_error_is_the_compilers_first_error_line_not_pips_summary() -> None:
    assert project_build.first_error(GCC) == 'rvbroken.c:4:2: error: #error "rvbroken does not build on RISC-V"'
    missing = "  error: subprocess-exited-with-error\n  ModuleNotFoundError: No module named 'Cython'\nERROR: x\n"
    assert project_build.first_error(missing) == "ModuleNotFoundError: No module named 'Cython'"
    assert project_build.first_error("  error: subprocess-exited-with-error\nERROR: no wheel\n") == "ERROR: no wheel"
    assert project_build.first_error("killed\n\n") == "killed"
    assert project_build.first_error("") == ""


def make_sdist(folder: Path, name: str, pkg_info: str, pyproject: str | None = None) -> Path:
    path = folder / f"{name}-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as t:
        for leaf, text in (("PKG-INFO", pkg_info), ("pyproject.toml", pyproject)):
            if text is None:
                continue
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-1.0/{leaf}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def _sdist_only(name: str) -> dict[str, Any]:
    f = {"filename": f"{name}-1.0.tar.gz", "packagetype": "sdist", "url": "u", "digests": {"sha256": "0" * 64}}
    return {"releases": {"1.0": [f]}}


def test_an_sdist_only_requirement_is_downloaded_and_planned_for_building_with_the_toolchain(tmp_path: Path) -> None:
    sdist = make_sdist(
        tmp_path,
        "cext",
        "Metadata-Version: 2.2\nName: cext\nVersion: 1.0\nRequires-Dist: numpy>=1.24\n"
        "Requires-Dist: rich ; extra == 'cli'\n",
        '[build-system]\nrequires = ["setuptools>=61", "cython>=3"]\n',
    )
    index = {"python3-numpy": "1:2.2.4+ds-1", "python3-setuptools": "78.1.1-0.1", "cython3": "3.0.11+dfsg-2"}
    sources = deps.Sources(distro=lambda _p: index, pypi=lambda n: _sdist_only(n) if n == "cext" else None)
    plan = project.plan_target(_built(tmp_path, ["cext"]), TRIXIE, sources, lambda _o: sdist, build_in_target=True)
    assert plan.not_run == ""
    (item,) = plan.builds
    assert (item.name, item.requirement, item.source) == ("cext", "cext", sdist)
    assert [r.name for r in plan.resolutions] == ["cext", "numpy"]  # its PKG-INFO's requirement, not the extra's
    toolchain = project_sdist.TOOLCHAIN["debian"]
    assert plan.packages == ["python3-numpy", *toolchain, "cython3"]  # cython3: Debian's Cython, a build requirement


def test_without_the_flag_an_sdist_only_requirement_says_how_to_build_it(tmp_path: Path) -> None:
    sources = deps.Sources(distro=lambda _p: {}, pypi=lambda n: _sdist_only(n))
    plan = project.plan_target(_built(tmp_path, ["cext"]), TRIXIE, sources)
    assert "pass --build-in-target to build it there" in plan.not_run
    assert plan.builds == []


def test_a_build_requirement_the_distribution_lacks_makes_the_cell_not_run(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "cext", "Metadata-Version: 2.2\nName: cext\nVersion: 1.0\n", None)
    sources = deps.Sources(distro=lambda _p: {"python3-setuptools": "40.0-1"}, pypi=lambda n: _sdist_only(n))
    plan = project.plan_target(_built(tmp_path, ["cext"]), TRIXIE, sources, lambda _o: sdist, build_in_target=True)
    assert '"setuptools>=40.8.0", a build requirement of cext-1.0.tar.gz, is not a distribution package' in (
        plan.not_run
    )


def test_a_compiled_project_is_built_in_the_target_with_the_flag(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n')
    compiled = _built(tmp_path, [], tag="cp311-cp311-manylinux_2_17_x86_64")
    sources = deps.Sources(distro=lambda _p: {"python3-setuptools": "78.1.1-0.1"}, pypi=lambda _n: None)
    assert "pass --build-in-target" in project.plan_target(compiled, TRIXIE, sources).not_run
    plan = project.plan_target(compiled, TRIXIE, sources, build_in_target=True)
    assert plan.not_run == ""
    assert [(b.name, b.source) for b in plan.builds] == [("demo", tmp_path)]
    assert "python3-setuptools" in plan.packages
    folder = tmp_path / "suite"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    project.write_suite(compiled, plan, folder)
    assert not (folder / project.SITE).exists()  # the host's x86-64 wheel is not used there


class FakeTarget:
    """What build_one asks of a target: put, run (pip, then the listing) and get, recorded."""

    def __init__(self, pip: Completed, wheel: Path | None) -> None:
        self.config = type("C", (), {"python": "python3"})()
        self.pip, self.wheel, self.calls = pip, wheel, []  # type: ignore[var-annotated]

    def put(self, local: Path, remote: str) -> None:
        self.calls.append(("put", local.name, remote))

    def run(self, argv: list[str], **_kw: Any) -> Completed:
        self.calls.append(("run", argv[:3]))
        if argv[1:3] == ["-m", "pip"]:
            return self.pip
        names = f"{self.wheel.name}\n" if self.wheel else ""
        return Completed(argv, 0, None, names, "", 0.1)

    def get(self, remote: str, local: Path, **_kw: Any) -> None:
        assert self.wheel is not None
        local.write_bytes(self.wheel.read_bytes())


def _pending(tmp_path: Path, item: project_sdist.BuildItem) -> tuple[Plan, project.Pending]:
    cfg = TargetConfig("rv", "chroot", Path("rv.toml"), "", "riscv64", "python3", {}, ImageSpec(), None)  # type: ignore[arg-type]
    suite = SuiteConfig("project:demo", tmp_path, "", "in-target", 60, 60, [], SuitePackages(), {})
    folder = tmp_path / "projects" / "demo" / "suites" / "rv"
    folder.mkdir(parents=True)
    column = model_deps.clean_deps_column({"target": "rv", "requirements": [{"name": "cext", "requirement": "cext"}]})
    deps_file = folder.parent / "rv.deps.json"
    return Plan([PlannedCell(cfg, suite)]), project.Pending(cfg, suite.name, folder, column, deps_file, [item])


def test_a_failed_build_makes_the_cell_not_run_with_the_compilers_line_and_keeps_its_log(tmp_path: Path) -> None:
    item = project_sdist.BuildItem("cext", "cext>=1", tmp_path / "cext-1.0.tar.gz")
    plan, pending = _pending(tmp_path, item)
    target = FakeTarget(Completed(["pip"], 1, None, GCC, "", 12.34), None)
    builds = pending.folder.parent.parent / "builds" / "rv"
    project_build.build_one(target, item, "/tmp/b", builds, builds)  # type: ignore[arg-type]
    project_build._finish(pending, plan)
    (cell,) = plan.cells
    assert cell.suite.not_run.startswith("a dependency could not be built on this target: building cext>=1")
    assert 'failed after 12 s: rvbroken.c:4:2: error: #error "rvbroken does not build on RISC-V"' in cell.suite.not_run
    assert pending.column["not_run"] == cell.suite.not_run
    (record,) = pending.column["builds"]
    assert (record["seconds"], record["wheel"], record["source"]) == (12.3, "", "cext-1.0.tar.gz")
    assert "error: command" in (builds / "cext.log").read_text()
    assert '"not_run": "a dependency could not be built' in pending.deps_file.read_text()


def test_a_built_wheel_is_unpacked_into_the_site_and_its_time_recorded(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "cext", "1.0", [], tag="cp313-cp313-linux_riscv64")
    item = project_sdist.BuildItem("cext", "cext>=1", tmp_path / "cext-1.0.tar.gz")
    plan, pending = _pending(tmp_path, item)
    target = FakeTarget(Completed(["pip"], 0, None, "Successfully built cext\n", "", 3.21), wheel)
    out = tmp_path / "built"
    project_build.build_one(target, item, "/tmp/b", out, out)  # type: ignore[arg-type]
    assert target.calls[0] == ("put", "cext-1.0.tar.gz", "/tmp/b/src/cext-1.0.tar.gz")
    project_build._finish(pending, plan)
    assert plan.cells[0].suite.not_run == ""
    assert (pending.folder / project.SITE / "cext" / "__init__.py").is_file()
    (record,) = pending.column["builds"]
    assert (record["seconds"], record["wheel"], record["error"]) == (3.2, wheel.name, "")


def test_a_wheel_of_another_name_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "other", "1.0", [])
    item = project_sdist.BuildItem("cext", "cext", tmp_path / "cext-1.0.tar.gz")
    target = FakeTarget(Completed(["pip"], 0, None, "", "", 1.0), wheel)
    project_build.build_one(target, item, "/b", tmp_path / "o", tmp_path / "o")  # type: ignore[arg-type]
    assert item.wheel is None
    assert "which is not cext" in item.error


def test_builds_read_back_from_results_json_are_cleaned() -> None:
    col = model_deps.clean_deps_column(
        {"builds": [{"name": "x" * 5000, "seconds": math.nan, "wheel": 3}, {"seconds": 4}, "junk"]}
    )
    first, second = col["builds"]
    assert (len(first["name"]), first["seconds"], first["wheel"]) == (model_deps.MAX_DEPS_TEXT, None, "")
    assert second["seconds"] == 4.0
    assert model_deps.clean_deps_column({})["builds"] == []


def test_sdist_metadata_is_read_without_unpacking_and_a_zip_too(tmp_path: Path) -> None:
    archive = tmp_path / "z-1.0.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("z-1.0/PKG-INFO", "Metadata-Version: 2.2\nName: z\nVersion: 1.0\nRequires-Dist: six\n")
    assert [r.name for r in project_sdist.sdist_requires(archive, ())] == ["six"]
    assert [str(r) for r in project_sdist.build_requires(archive)] == ["setuptools>=40.8.0"]


def test_build_in_target_needs_a_project(tmp_path: Path) -> None:
    from harness import workflow
    from harness.config import load_project

    root = Path(__file__).resolve().parents[2]
    req = workflow.RunRequest(targets=["native"], suites=[], build_in_target=True, out=tmp_path)
    with pytest.raises(ConfigError, match="--build-in-target builds the dependencies of a --project"):
        workflow.prepare(load_project(root), req)
