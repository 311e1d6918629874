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
requirement, and what exists.

The host side (copy, build, read the wheel) is :mod:`harness.project_wheel`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from harness import deps
from harness.config import SuiteConfig, SuitePackages, TargetConfig
from harness.errors import ConfigError, LeapfrogError
from harness.model_deps import ProjectDeps, clean_deps_column
from harness.plan import PlannedCell
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
) -> TargetPlan:
    """Resolve the project's requirements (and those of every wheel taken, in turn) on one target."""
    plan = TargetPlan(platform.target)
    if not built.pure and not platform.native:
        plan.not_run = (
            f"{built.wheel.name} has compiled parts built for this host; building the project in the target "
            "is not supported yet, so it cannot run on this target."
        )
        return plan
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
        elif res.choice == "sdist":
            lacking.append(
                f'"{req}" has only an sdist for this target ({res.summary()}); building sdists in the target '
                "is not supported yet"
            )
        elif res.choice == "none":
            lacking.append(f'"{req}" has nothing for this target: {res.summary()}')
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


def plan(
    paths: Iterable[Path],
    targets: list[TargetConfig],
    work: Path,
    *,
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
    sources: deps.LiveSources | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> tuple[list[PlannedCell], list[ProjectDeps]]:
    """A plan cell per target for each project in ``paths`` (suite folders written under ``work``), and each
    project's dependency table (one column per target, as ``leapfrog deps --json`` gives it, plus ``not_run``)
    for results.json and the report; each column is also written to ``suites/<target>.deps.json``.
    """
    live = sources or deps.LiveSources()
    out: list[PlannedCell] = []
    tables: list[ProjectDeps] = []
    for path in paths:
        folder = work / _safe_name(path.resolve().name)
        progress(f"project {path}: building its wheel on the host")
        built = prepare(path, folder, extras, groups)
        table = ProjectDeps(suite=PREFIX + built.name, version=built.version, source=str(path))
        for target in targets:
            platform = deps.platform_for(target)
            progress(f"project {built.name}: resolving {len(built.requirements)} requirement(s) for {target.name}")
            tplan = plan_target(built, platform, live.sources())
            if live.errors.get(target.name) and not tplan.not_run:
                progress(f"project {built.name}: {target.name}: {live.errors[target.name]}")
            suite_dir = folder / "suites" / _safe_name(target.name)
            write_suite(built, tplan, suite_dir)
            distro = target.image.distro if target.image else ""
            out.append(PlannedCell(target, suite_config(built, tplan, suite_dir, distro)))
            column = deps.TargetDeps(platform, tplan.resolutions, live.index_info(platform))
            column.index_error = live.errors.get(target.name, "")
            raw = {**column.to_dict(), "not_run": tplan.not_run}
            table.targets.append(clean_deps_column(raw))  # the shape results.json documents, every key present
            (folder / "suites" / f"{suite_dir.name}.deps.json").write_text(
                json.dumps(raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        tables.append(table)
    return out, tables


def cells(paths: Iterable[Path], targets: list[TargetConfig], work: Path, **kw: Any) -> list[PlannedCell]:
    """The plan cells of :func:`plan` alone."""
    return plan(paths, targets, work, **kw)[0]
