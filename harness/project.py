"""``leapfrog run --project PATH``: a user's own Python project as a suite, one cell per target.

PATH is a project folder (``pyproject.toml`` or ``setup.py``, with tests) or
an sdist (``.tar.gz``/``.zip``).  On the host leapfrog:

1. copies the project (or unpacks the sdist) into the run folder and builds
   its wheel there with ``pip wheel --no-deps`` (the user's folder is never
   written to);
2. reads the wheel's ``Requires-Dist`` (with ``--extra``), adds ``--group``
   dependency groups from ``pyproject.toml``, and resolves every requirement on
   every target (:mod:`harness.deps`): the target's distribution package first
   (it goes into the target image, which is cached by its package set), else
   a PyPI wheel for the target's tags (downloaded on the host, checked against
   PyPI's SHA-256, and its own requirements resolved in turn); on ``native``
   what the interpreter already has;
3. writes a suite folder per target: the project's tests and pytest
   configuration, the project's wheel and the dependency wheels unpacked in
   ``_leapfrog_site/`` (put first on ``sys.path`` by a generated
   ``conftest.py``), so nothing is installed into any interpreter and nothing
   is fetched from inside a target.

A requirement nothing fits (no distribution package, no wheel for the
target; an sdist only), or a project with compiled parts on a non-native
target, makes that target's cell ``not-run`` with the reason: the
requirement, and what exists.  With ``--build-in-target`` an sdist-only
requirement and a compiled project are built in the target instead
(:mod:`harness.project_sdist` plans it, :mod:`harness.project_build` builds).

The host side (copy, build, read the wheel) is :mod:`harness.project_wheel`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from packaging.utils import canonicalize_name

from harness import deps
from harness.config import SuiteConfig, SuitePackages, TargetConfig
from harness.errors import ConfigError, LeapfrogError
from harness.model_deps import ProjectDeps, clean_deps_column
from harness.plan import PlannedCell
from harness.project_sdist import BuildItem, build_packages, sdist_requires
from harness.project_wheel import (
    BUILD_TIMEOUT,
    SKIP,
    Built,
    ProjectError,
    build_wheel,
    copy_source,
    prepare,
    requires_dist,
    unpack_sdist,
    unpack_wheel,
    wheel_metadata,
)

__all__ = [
    "BUILD_TIMEOUT",
    "Built",
    "Pending",
    "Planned",
    "ProjectError",
    "build_wheel",
    "cells",
    "copy_source",
    "copy_tests",
    "plan",
    "plan_target",
    "prepare",
    "requires_dist",
    "suite_config",
    "unpack_sdist",
    "unpack_wheel",
    "wheel_metadata",
    "write_suite",
]

PREFIX = "project:"
SITE = "_leapfrog_site"
PROJECT_CONFTEST = "_leapfrog_project_conftest.py"
#: Whole cell, host side (emulated pytest runs are slow); one case inside the target.
CELL_TIMEOUT = 1800.0
CASE_TIMEOUT = 300.0
#: Folders holding a project's tests, and pytest's configuration files, copied into the suite.
TEST_DIRS = ("tests", "test", "testing")
INI_FILES = ("pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml")

CONFTEST = """\
# Written by leapfrog (harness/project.py).  The project and the dependency wheels
# leapfrog unpacked come first on sys.path; the project's own top-level
# conftest.py, if it has one, is loaded from here.
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_here, "{site}"))
collect_ignore = ["{site}"]
if os.path.exists(os.path.join(_here, "{project_conftest}")):
    import {project_module} as _project_conftest

    globals().update({{k: v for k, v in vars(_project_conftest).items() if not k.startswith("__")}})
    collect_ignore += list(getattr(_project_conftest, "collect_ignore", []))
"""


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def copy_tests(source: Path, suite: Path) -> int:
    """The project's tests and pytest configuration into ``suite``; returns how many test files."""
    for d in TEST_DIRS:
        if (source / d).is_dir():
            shutil.copytree(source / d, suite / d, ignore=SKIP, symlinks=True, dirs_exist_ok=True)
    for f in source.iterdir():
        if f.is_file() and (re.fullmatch(r"test_.*\.py|.*_test\.py", f.name) or f.name in INI_FILES):
            shutil.copy2(f, suite / f.name)
    if (source / "conftest.py").is_file():
        shutil.copy2(source / "conftest.py", suite / PROJECT_CONFTEST)
    (suite / "conftest.py").write_text(
        CONFTEST.format(site=SITE, project_conftest=PROJECT_CONFTEST, project_module=PROJECT_CONFTEST[:-3]),
        encoding="utf-8",
    )
    return sum(1 for p in suite.rglob("*.py") if re.fullmatch(r"test_.*\.py|.*_test\.py", p.name))


# --------------------------------------------------------------------------- per target


@dataclasses.dataclass
class TargetPlan:
    """What one target's cell of the project needs, or why it cannot run."""

    target: str
    packages: list[str] = dataclasses.field(default_factory=list)  # distribution packages for the image
    wheels: list[Path] = dataclasses.field(default_factory=list)  # downloaded, to unpack into the site
    resolutions: list[deps.Resolution] = dataclasses.field(default_factory=list)
    builds: list[BuildItem] = dataclasses.field(default_factory=list)  # --build-in-target: wheels to build there
    not_run: str = ""


def wheels_dir() -> Path:
    d = deps.deps_cache() / "wheels"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _download(offer: deps.Offer) -> Path:
    from harness.images.fetch import fetch

    return fetch(offer.url, offer.sha256, dest_dir=wheels_dir())


def plan_target(
    built: Built,
    platform: deps.Platform,
    sources: deps.Sources,
    download: Callable[[deps.Offer], Path] = _download,
    *,
    build_in_target: bool = False,
) -> TargetPlan:
    """Resolve the project's requirements (and those of every wheel taken, in turn) on one target.

    With ``build_in_target``, an sdist-only requirement (downloaded here) and a
    compiled project off ``native`` become :class:`BuildItem` s, and the
    toolchain and build requirements join the image's packages.
    """
    plan = TargetPlan(platform.target)
    if not built.pure and not platform.native:
        if not build_in_target:
            plan.not_run = (
                f"{built.wheel.name} has compiled parts built for this host, so it cannot run on this target; "
                "pass --build-in-target to build it in the target."
            )
            return plan
        plan.builds.append(BuildItem(built.name, f"{built.name} (the project)", built.source))
    queue = list(built.requirements)
    seen: set[str] = {built.name}
    lacking: list[str] = []
    while queue:
        req = queue.pop(0)
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        (res,) = deps.resolve([req], platform, sources)
        plan.resolutions.append(res)
        chosen = res.chosen
        if res.choice == "distro" and chosen is not None:
            plan.packages.append(chosen.package)
        elif res.choice == "wheel" and chosen is not None:
            try:
                wheel = download(chosen)
            except LeapfrogError as e:
                lacking.append(f'"{req}": the wheel {chosen.package} could not be downloaded ({e})')
                continue
            plan.wheels.append(wheel)
            env = platform.marker_env()
            for sub in requires_dist(wheel_metadata(wheel), req.extras, wheel.name):
                if sub.marker is None or sub.marker.evaluate(env):
                    queue.append(sub)
        elif res.choice == "sdist" and chosen is not None and build_in_target:
            try:
                sdist = download(chosen)
            except LeapfrogError as e:
                lacking.append(f'"{req}": the sdist {chosen.package} could not be downloaded ({e})')
                continue
            plan.builds.append(BuildItem(name, str(req), sdist))
            env = platform.marker_env()
            queue.extend(s for s in sdist_requires(sdist, req.extras) if s.marker is None or s.marker.evaluate(env))
        elif res.choice == "sdist":
            lacking.append(
                f'"{req}" has only an sdist for this target ({res.summary()}); pass --build-in-target to build it there'
            )
        elif res.choice == "none":
            lacking.append(f'"{req}" has nothing for this target: {res.summary()}')
    if plan.builds:
        packages, cannot = build_packages(plan.builds, platform, sources)
        plan.packages.extend(p for p in packages if p not in plan.packages)
        lacking.extend(cannot)
    if lacking:
        plan.not_run = "a dependency cannot be had on this target: " + "; ".join(lacking) + "."
    return plan


def write_suite(built: Built, plan: TargetPlan, folder: Path) -> None:
    """The target's suite folder: tests, pytest configuration, and the site with the project and its wheels."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    if copy_tests(built.source, folder) == 0:
        raise ConfigError(
            f"{built.source}: no tests found (a tests/ or test/ folder, or test_*.py files at the top); "
            "--project runs the project's pytest tests."
        )
    if plan.not_run:
        return
    if not any(b.name == built.name for b in plan.builds):  # else the wheel built in the target goes there
        unpack_wheel(built.wheel, folder / SITE)
    for wheel in plan.wheels:
        unpack_wheel(wheel, folder / SITE)


def suite_config(built: Built, plan: TargetPlan, folder: Path, distro: str) -> SuiteConfig:
    packages = SuitePackages(**{distro: sorted(set(plan.packages))}) if distro in ("debian", "openeuler") else None
    return SuiteConfig(
        name=PREFIX + built.name,
        path=folder,
        description=f"the tests of {built.name} {built.version}",
        kind="in-target",
        timeout=CELL_TIMEOUT,
        case_timeout=CASE_TIMEOUT,
        key_packages=[built.name, *(r.name for r in plan.resolutions if r.needed)],
        packages=packages or SuitePackages(),
        settings={},
        not_run=plan.not_run,
    )


@dataclasses.dataclass
class Pending:
    """One target's cell of a project whose wheels are still to be built in the target (``--build-in-target``).

    :func:`harness.project_build.run_builds` builds ``items``, unpacks the wheels
    into ``folder``'s site, and writes what each build did into ``column``
    (the project's table in results.json) and ``deps_file``.
    """

    target: TargetConfig
    suite: str
    folder: Path  # the suite folder
    column: dict[str, Any]  # the target's column of the project's dependency table
    deps_file: Path
    items: list[BuildItem]


class Planned(NamedTuple):
    cells: list[PlannedCell]
    tables: list[ProjectDeps]
    pending: list[Pending]


def plan(
    paths: Iterable[Path],
    targets: list[TargetConfig],
    work: Path,
    *,
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
    sources: deps.LiveSources | None = None,
    build_in_target: bool = False,
    progress: Callable[[str], None] = lambda _m: None,
) -> Planned:
    """A plan cell per target for each project in ``paths`` (suite folders written under ``work``), and each
    project's dependency table (one column per target, as ``leapfrog deps --json`` gives it, plus ``not_run``)
    for results.json and the report; each column is also written to ``suites/<target>.deps.json``.
    With ``build_in_target``, the cells whose wheels must first be built in their target are ``pending``.
    """
    live = sources or deps.LiveSources()
    out: list[PlannedCell] = []
    tables: list[ProjectDeps] = []
    pending: list[Pending] = []
    for path in paths:
        folder = work / _safe_name(path.resolve().name)
        progress(f"project {path}: building its wheel on the host")
        built = prepare(path, folder, extras, groups)
        table = ProjectDeps(suite=PREFIX + built.name, version=built.version, source=str(path))
        for target in targets:
            platform = deps.platform_for(target)
            progress(f"project {built.name}: resolving {len(built.requirements)} requirement(s) for {target.name}")
            tplan = plan_target(built, platform, live.sources(), build_in_target=build_in_target)
            if live.errors.get(target.name) and not tplan.not_run:
                progress(f"project {built.name}: {target.name}: {live.errors[target.name]}")
            suite_dir = folder / "suites" / _safe_name(target.name)
            write_suite(built, tplan, suite_dir)
            distro = target.image.distro if target.image else ""
            out.append(PlannedCell(target, suite_config(built, tplan, suite_dir, distro)))
            column = deps.TargetDeps(platform, tplan.resolutions, live.index_info(platform))
            column.index_error = live.errors.get(target.name, "")
            raw = {**column.to_dict(), "not_run": tplan.not_run, "builds": [b.to_dict() for b in tplan.builds]}
            clean = clean_deps_column(raw)  # the shape results.json documents, every key present
            table.targets.append(clean)
            deps_file = folder / "suites" / f"{suite_dir.name}.deps.json"
            write_deps_file(deps_file, raw)
            if tplan.builds and not tplan.not_run:
                pending.append(Pending(target, PREFIX + built.name, suite_dir, clean, deps_file, tplan.builds))
        tables.append(table)
    return Planned(out, tables, pending)


def write_deps_file(path: Path, column: dict[str, Any]) -> None:
    """A target's column of the project's dependency table, beside its suite folder."""
    path.write_text(json.dumps(column, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def cells(paths: Iterable[Path], targets: list[TargetConfig], work: Path, **kw: Any) -> list[PlannedCell]:
    """The plan cells of :func:`plan` alone."""
    return plan(paths, targets, work, **kw).cells
