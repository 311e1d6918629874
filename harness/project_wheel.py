"""A ``--project`` made ready on the host: copied (or its sdist unpacked), its wheel built, its metadata read.

Nothing here knows a target; :mod:`harness.project` resolves the requirements
read here on each target and writes the suites.
"""

from __future__ import annotations

import dataclasses
import email.parser
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Collection, Iterable
from pathlib import Path, PurePosixPath

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness import deps
from harness.errors import ConfigError, LeapfrogError

#: What is not copied from a project folder.
SKIP = shutil.ignore_patterns(".git", ".hg", ".venv", "venv", ".tox", ".nox", "build", "dist", "__pycache__", "*.pyc")
#: Seconds for building the project's wheel on the host.
BUILD_TIMEOUT = 900


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
        shutil.copytree(path, src / path.resolve().name, ignore=SKIP, symlinks=True)
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
    return decide_extras(meta.get_all("Requires-Dist") or [], wanted)


def decide_extras(lines: Iterable[str], wanted: Collection[str]) -> list[Requirement]:
    """``Requires-Dist`` lines as requirements: those of an extra only when it is ``wanted`` (canonical names)."""
    out: list[Requirement] = []
    for line in lines:
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
