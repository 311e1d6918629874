"""``--build-in-target``: what a target must build for a ``--project``, planned on the host.

A requirement that only has an sdist for a target, or a project with compiled
parts on a target other than ``native``, is built in that target
(:mod:`harness.project_build` runs the builds) instead of making the cell
not-run.  Planning it here, on the host, before any target starts:

- the sdist is downloaded on the host (checked against PyPI's SHA-256): a target
  never reaches the network;
- its own requirements are read from its ``PKG-INFO`` (static metadata) and
  resolved like any other;
- its build requirements (``[build-system].requires`` of its
  ``pyproject.toml``, else setuptools) must come from the target's distribution
  (``installed`` on ``native``): the build runs with ``--no-build-isolation
  --no-index``;
- the target's image gets the toolchain (:data:`TOOLCHAIN`) and those packages,
  through the suite's package list: the image is cached by its package set.
"""

from __future__ import annotations

import dataclasses
import email.parser
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness import deps
from harness.project_wheel import decide_extras

#: Packages a target's image needs to build C/C++ extensions with pip, by distribution.
TOOLCHAIN: dict[str, list[str]] = {
    "debian": ["build-essential", "python3-dev", "python3-pip", "python3-setuptools", "python3-wheel"],
    "openeuler": ["gcc", "gcc-c++", "make", "python3-devel", "python3-pip", "python3-setuptools", "python3-wheel"],
}
#: What pip assumes of a project without ``[build-system]`` (PEP 518).
DEFAULT_BUILD_REQUIRES = ("setuptools>=40.8.0",)
#: Bytes read of an sdist's PKG-INFO or pyproject.toml.
MAX_META = 1 << 20


@dataclasses.dataclass
class BuildItem:
    """One wheel to build in a target: an sdist (downloaded on the host) or the project's own folder."""

    name: str  # canonical distribution name
    requirement: str  # the requirement it answers, or "<name> (the project)"
    source: Path
    seconds: float | None = None  # how long the build took in the target; None: it did not run
    wheel: Path | None = None  # the wheel built, copied back to the host
    error: str = ""  # why it was not built (the compiler's first error line, a timeout, ...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requirement": self.requirement,
            "source": self.source.name,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "wheel": self.wheel.name if self.wheel else "",
            "error": self.error,
        }


def _member(archive: Path, leaf: str) -> str | None:
    """The text of ``<top>/<leaf>`` in an sdist (.tar.gz or .zip), None when absent or too big."""
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    if len(PurePosixPath(info.filename).parts) == 2 and info.filename.endswith("/" + leaf):
                        return None if info.file_size > MAX_META else z.read(info).decode("utf-8", "replace")
            return None
        with tarfile.open(archive) as t:
            for m in t:
                if m.isfile() and len(PurePosixPath(m.name).parts) == 2 and m.name.endswith("/" + leaf):
                    f = t.extractfile(m)
                    return None if f is None or m.size > MAX_META else f.read().decode("utf-8", "replace")
    except (tarfile.TarError, zipfile.BadZipFile, OSError):
        return None
    return None


def _pyproject_of(source: Path) -> str | None:
    if source.is_dir():
        f = source / "pyproject.toml"
        return f.read_text(encoding="utf-8", errors="replace") if f.is_file() else None
    return _member(source, "pyproject.toml")


def build_requires(source: Path) -> list[Requirement]:
    """``[build-system].requires`` of an sdist or a project folder; setuptools when it has none (as pip)."""
    text = _pyproject_of(source)
    table: Any = {}
    if text is not None:
        try:
            table = tomllib.loads(text).get("build-system", {})
        except tomllib.TOMLDecodeError:
            table = {}
    lines = table.get("requires") if isinstance(table, dict) else None
    if not isinstance(lines, list):
        lines = list(DEFAULT_BUILD_REQUIRES)
    out = []
    for line in lines:
        try:
            out.append(Requirement(str(line)))
        except InvalidRequirement:
            continue
    return out


def sdist_requires(archive: Path, extras: Iterable[str]) -> list[Requirement]:
    """The ``Requires-Dist`` of an sdist's PKG-INFO (with ``extras``): what it needs at run time, before it is built.

    A ``Requires-Dist`` marked dynamic (or missing from an old PKG-INFO) is
    only known once built: :mod:`harness.project_build` checks the built
    wheel's against what was resolved.
    """
    text = _member(archive, "PKG-INFO")
    if text is None:
        return []
    meta = email.parser.Parser().parsestr(text)
    return decide_extras(meta.get_all("Requires-Dist") or [], {canonicalize_name(e) for e in extras})


def build_packages(
    items: Iterable[BuildItem], platform: deps.Platform, sources: deps.Sources
) -> tuple[list[str], list[str]]:
    """The distribution packages the builds of ``items`` need on ``platform`` (toolchain first), and what lacks.

    A build requirement must be the target's distribution package (``native``:
    installed in its interpreter) in a version that fits; anything else is a
    sentence in the second list.
    """
    packages = [] if platform.native else list(TOOLCHAIN.get(platform.distro, []))
    lacking: list[str] = []
    if not platform.native and not platform.distro:
        return packages, lacking  # a target without a known distribution: the build itself will say what lacks
    seen: set[str] = set()
    want = "installed" if platform.native else "distro"
    for item in items:
        for req in build_requires(item.source):
            key = f"{canonicalize_name(req.name)} {req.specifier}"
            if key in seen:
                continue
            seen.add(key)
            (res,) = deps.resolve([req], platform, sources)
            if not res.needed:
                continue
            chosen = next((o for o in res.offers if o.fits and o.source in deps.TAKEN_FROM[want]), None)
            if chosen is None:
                where = "installed in the native interpreter" if platform.native else "a distribution package"
                lacking.append(
                    f'"{req}", a build requirement of {item.source.name}, is not {where} that fits '
                    f"({res.summary()}); --build-in-target builds offline with what the target has"
                )
            elif not platform.native and chosen.package not in packages:
                packages.append(chosen.package)
    return packages, lacking
