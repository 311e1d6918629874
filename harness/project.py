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
"""

from __future__ import annotations

import dataclasses
import email.parser
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness import deps
from harness.config import SuiteConfig, SuitePackages, TargetConfig
from harness.errors import ConfigError, LeapfrogError
from harness.model import ProjectDeps, clean_deps_column
from harness.plan import PlannedCell

PREFIX = "project:"
SITE = "_leapfrog_site"
PROJECT_CONFTEST = "_leapfrog_project_conftest.py"
#: Whole cell, host side (emulated pytest runs are slow); one case inside the target.
CELL_TIMEOUT = 1800.0
CASE_TIMEOUT = 300.0
#: Folders holding a project's tests, and pytest's configuration files, copied into the suite.
TEST_DIRS = ("tests", "test", "testing")
INI_FILES = ("pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml")
_SKIP = shutil.ignore_patterns(".git", ".hg", ".venv", "venv", ".tox", ".nox", "build", "dist", "__pycache__", "*.pyc")
#: Seconds for building the project's wheel on the host.
BUILD_TIMEOUT = 900

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


class ProjectError(LeapfrogError):
    """A project could not be prepared on the host (unpacked, built)."""


@dataclasses.dataclass(frozen=True)
class Built:
    """A project made ready on the host."""

    name: str  # canonical
    version: str
    source: Path  # the copy (or unpacked sdist) in the run folder
    wheel: Path
    requirements: list[Requirement]  # the wheel's Requires-Dist (with the extras asked for) + groups

    @property
    def pure(self) -> bool:
        return self.wheel.name.endswith("-none-any.whl")


# --------------------------------------------------------------------------- host side


def _safe_member(name: str) -> bool:
    p = PurePosixPath(name)
    return not p.is_absolute() and ".." not in p.parts and "\\" not in name


def unpack_sdist(archive: Path, dest: Path) -> Path:
    """Unpack an sdist into ``dest`` (no links, devices or paths outside it); return its top folder."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    if not _safe_member(info.filename):
                        raise ProjectError(f"{archive}: member {info.filename!r} points outside the archive.")
                z.extractall(dest)  # noqa: S202 (every member checked above)
        else:
            with tarfile.open(archive) as t:
                t.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
        raise ProjectError(f"{archive}: cannot unpack it as an sdist ({e}); pass a .tar.gz or .zip sdist.") from e
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise ProjectError(f"{archive}: an sdist holds one top folder; this one has {len(tops)}.")
    return tops[0]


def copy_source(path: Path, work: Path) -> Path:
    """The project's files in ``work/src``: a copy of the folder, or the unpacked sdist."""
    src = work / "src"
    if src.exists():
        shutil.rmtree(src)
    if path.is_dir():
        shutil.copytree(path, src / path.resolve().name, ignore=_SKIP, symlinks=True)
        return src / path.resolve().name
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".zip")):
        return unpack_sdist(path, src)
    raise ConfigError(f"--project {path}: not a project folder or an sdist (.tar.gz, .zip); pass one of them.")


def build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel --no-deps`` of ``source`` into ``out`` (on the host, with the interpreter running leapfrog)."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise ProjectError(f"building the wheel of {source} took over {BUILD_TIMEOUT} s; it was stopped.") from e
    wheels = sorted(out.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise ProjectError(f"`pip wheel --no-deps {source}` failed (exit {done.returncode}); fix the build:\n{tail}")
    return wheels[0]


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next((n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)), None)
        if name is None:
            raise ProjectError(f"{wheel.name} has no .dist-info/METADATA; it is not a wheel.")
        return email.parser.Parser().parsestr(z.read(name).decode("utf-8", errors="replace"))


def requires_dist(meta: email.message.Message, extras: Iterable[str], where: str) -> list[Requirement]:
    """The ``Requires-Dist`` lines with their ``extra`` markers decided for ``extras`` (other markers kept)."""
    wanted = {canonicalize_name(e) for e in extras}
    known = {canonicalize_name(e) for e in meta.get_all("Provides-Extra") or []}
    unknown = wanted - known
    if unknown:
        raise ConfigError(f"{where}: no extra {', '.join(sorted(unknown))}; it provides: {', '.join(known) or 'none'}.")
    out: list[Requirement] = []
    for line in meta.get_all("Requires-Dist") or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is not None and "extra" in str(req.marker):
            if not any(req.marker.evaluate({"extra": e}) for e in wanted):
                continue
            req = Requirement(str(req).split(";", 1)[0])  # the extra's other conditions are rare; kept simple
        out.append(req)
    return out


def prepare(path: Path, work: Path, extras: Iterable[str] = (), groups: Iterable[str] = ()) -> Built:
    """Copy or unpack the project into ``work``, build its wheel, and read its requirements."""
    source = copy_source(path, work)
    wheel = build_wheel(source, work / "wheel")
    meta = wheel_metadata(wheel)
    reqs = requires_dist(meta, extras, f"--project {path}")
    if groups:
        reqs += deps.read_project(source, (), groups).requirements
    return Built(canonicalize_name(meta.get("Name", source.name)), meta.get("Version", ""), source, wheel, reqs)


def unpack_wheel(wheel: Path, site: Path) -> None:
    """A wheel's files in ``site`` as an installer would put them in site-packages (scripts and data left out)."""
    site.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            if not _safe_member(name):
                raise ProjectError(f"{wheel.name}: member {name!r} points outside the wheel; it is not used.")
            parts = PurePosixPath(name).parts
            if parts and parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            if info.is_dir() or not parts:
                continue
            dest = site.joinpath(*parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
            if info.external_attr >> 16 & 0o111:
                dest.chmod(0o755)


def copy_tests(source: Path, suite: Path) -> int:
    """The project's tests and pytest configuration into ``suite``; returns how many test files."""
    for d in TEST_DIRS:
        if (source / d).is_dir():
            shutil.copytree(source / d, suite / d, ignore=_SKIP, symlinks=True, dirs_exist_ok=True)
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
        folder = work / re.sub(r"[^A-Za-z0-9._-]", "_", path.resolve().name)
        progress(f"project {path}: building its wheel on the host")
        built = prepare(path, folder, extras, groups)
        table = ProjectDeps(suite=PREFIX + built.name, version=built.version, source=str(path))
        for target in targets:
            platform = deps.platform_for(target)
            progress(f"project {built.name}: resolving {len(built.requirements)} requirement(s) for {target.name}")
            tplan = plan_target(built, platform, live.sources())
            if live.errors.get(target.name) and not tplan.not_run:
                progress(f"project {built.name}: {target.name}: {live.errors[target.name]}")
            suite_dir = folder / "suites" / re.sub(r"[^A-Za-z0-9._-]", "_", target.name)
            write_suite(built, tplan, suite_dir)
            distro = target.image.distro if target.image else ""
            out.append(PlannedCell(target, suite_config(built, tplan, suite_dir, distro)))
            index = live.indexes.get((platform.distro, platform.release, platform.arch))
            column = deps.TargetDeps(platform, tplan.resolutions, index[1] if index else None)
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
