"""Where each of a project's dependencies can come from, on each target.

A project's requirements (PEP 621 ``[project].dependencies`` with the chosen
``optional-dependencies`` extras and PEP 735 ``dependency-groups``, or a
``requirements.txt``) are parsed with ``packaging``.  For every requirement and
target this module says what each source offers and whether it fits the
specifier:

- the target's distribution: the Debian ``Packages`` index of the release and
  architecture (signature of ``InRelease`` checked with ``gpgv``, the index
  checked against its SHA-256 there), or openEuler's ``repodata``;
- PyPI: a wheel whose tags the target accepts (riscv64 targets:
  ``manylinux_2_X_riscv64`` up to the release's glibc, and ``none-any``;
  ``native``: the host interpreter's own tags), or only an sdist, or nothing;
- on ``native`` only: the version already installed in the interpreter.

Sources are answered through two small callables (``Sources``), so the unit
tests feed recorded fixtures and never touch the network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from packaging import tags as pkgtags
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from harness.errors import ConfigError, LeapfrogError

#: Debian binary packages whose name is not ``python3-<PyPI name>`` (checked against trixie's index).
DEBIAN_NAMES: dict[str, str] = {
    "scikit-learn": "python3-sklearn",
    "pyyaml": "python3-yaml",
    "pillow": "python3-pil",
    "beautifulsoup4": "python3-bs4",
    "attrs": "python3-attr",
    "python-dateutil": "python3-dateutil",
    "pyzmq": "python3-zmq",
    "pyjwt": "python3-jwt",
    "pyserial": "python3-serial",
    "opencv-python": "python3-opencv",
    "opencv-python-headless": "python3-opencv",
    "protobuf": "python3-protobuf",
    "msgpack": "python3-msgpack",
    "typing-extensions": "python3-typing-extensions",
    "pygments": "python3-pygments",
    "torch": "python3-torch",
    "onnxruntime": "python3-onnxruntime",
    "pydantic-core": "python3-pydantic-core",
}

#: The Python and glibc each distribution release ships (its wheels must fit both).
RELEASES: dict[tuple[str, str], tuple[tuple[int, int], tuple[int, int]]] = {
    ("debian", "bookworm"): ((3, 11), (2, 36)),
    ("debian", "trixie"): ((3, 13), (2, 41)),
    ("debian", "forky"): ((3, 13), (2, 41)),
    ("debian", "sid"): ((3, 13), (2, 41)),
    ("debian", "testing"): ((3, 13), (2, 41)),
    ("debian", "unstable"): ((3, 13), (2, 41)),
    ("openeuler", "24.03-LTS"): ((3, 11), (2, 38)),
    ("openeuler", "24.03-LTS-SP1"): ((3, 11), (2, 38)),
}

DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
OPENEULER_MIRROR = "https://repo.openeuler.org"
PYPI_JSON = "https://pypi.org/pypi/{name}/json"
#: A cached index younger than this is used without asking the mirror again.
INDEX_MAX_AGE = _dt.timedelta(hours=24)
#: Bytes read from any one download (a Packages.xz is ~10 MB, primary.xml.gz ~30 MB).
MAX_DOWNLOAD = 256 << 20

#: Where a requirement is taken from, in order of preference.
CHOICES = ("not-needed", "installed", "distro", "wheel", "sdist", "none")


class DepsError(LeapfrogError):
    """An index could not be fetched or verified."""


# --------------------------------------------------------------------------- reading requirements


def _parse(line: str, where: str) -> Requirement:
    try:
        return Requirement(line)
    except InvalidRequirement as e:
        raise ConfigError(f"{where}: {line!r} is not a valid requirement ({e}); fix it (PEP 508).") from e


def read_requirements(path: Path, _seen: frozenset[Path] = frozenset()) -> list[Requirement]:
    """A ``requirements.txt``: one PEP 508 requirement a line; ``-r FILE`` is followed, other options skipped."""
    real = path.resolve()
    if real in _seen:
        raise ConfigError(f"{path}: it includes itself through -r; remove the loop.")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the requirements file: {e.strerror or e}.") from e
    out: list[Requirement] = []
    joined = re.sub(r"\\\n", "", text)
    for n, raw in enumerate(joined.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        m = re.match(r"(?:-r|--requirement)\s*=?\s*(\S+)", line)
        if m:
            out.extend(read_requirements(path.parent / m.group(1), _seen | {real}))
            continue
        if line.startswith("-"):
            continue  # --index-url, -c, -e ...: not a requirement of the project
        out.append(_parse(line.split(" --", 1)[0].strip(), f"{path}, line {n}"))
    return out


def _group(groups: dict[str, Any], name: str, file: Path, stack: tuple[str, ...] = ()) -> list[str]:
    wanted = canonicalize_name(name)
    found = {canonicalize_name(k): k for k in groups}
    if wanted not in found:
        raise ConfigError(
            f'{file}: no dependency group "{name}" in [dependency-groups]; known: {", ".join(groups) or "none"}.'
        )
    if wanted in stack:
        raise ConfigError(f'{file}: dependency group "{name}" includes itself; remove the loop.')
    out: list[str] = []
    for item in groups[found[wanted]]:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
            out.extend(_group(groups, item["include-group"], file, (*stack, wanted)))
        else:
            raise ConfigError(f'{file}: dependency group "{name}" holds {item!r}; expected a requirement string.')
    return out


@dataclasses.dataclass(frozen=True)
class ProjectInfo:
    """What ``pyproject.toml`` says about a project."""

    name: str
    requirements: list[Requirement]
    static: bool  # False: the dependencies are computed by the build (dynamic, or setup.py only)


def read_project(folder: Path, extras: Iterable[str] = (), groups: Iterable[str] = ()) -> ProjectInfo:
    """The project's name and requirements: ``[project].dependencies`` + extras + dependency groups."""
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        if (folder / "setup.py").is_file() or (folder / "setup.cfg").is_file():
            return ProjectInfo(name=folder.resolve().name, requirements=[], static=False)
        raise ConfigError(f"{folder}: no pyproject.toml or setup.py; pass the folder of a Python project.")
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{pyproject}: cannot read it as TOML: {e}.") from e
    project = data.get("project", {})
    if not isinstance(project, dict):
        raise ConfigError(f'{pyproject}: "project" must be a table.')
    name = project.get("name") or folder.resolve().name
    dynamic = project.get("dynamic", [])
    lines: list[str] = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        known = {canonicalize_name(k): k for k in optional}
        if canonicalize_name(extra) not in known:
            raise ConfigError(
                f'{pyproject}: no extra "{extra}" in [project.optional-dependencies]; '
                f"known: {', '.join(optional) or 'none'}."
            )
        lines.extend(optional[known[canonicalize_name(extra)]])
    for group in groups:
        lines.extend(_group(data.get("dependency-groups", {}), group, pyproject))
    reqs = [_parse(line, f'{pyproject}, key "project.dependencies"') for line in lines]
    static = "dependencies" not in dynamic and not (extras and "optional-dependencies" in dynamic)
    return ProjectInfo(name=str(name), requirements=reqs, static=static)


# --------------------------------------------------------------------------- target platforms


@dataclasses.dataclass(frozen=True)
class Platform:
    """What a target accepts: its distribution, Python, and wheel tags."""

    target: str
    distro: str  # "debian", "openeuler", or "" (native: no distribution packages)
    release: str
    arch: str  # the distribution's name for it (riscv64, amd64)
    python: tuple[int, int]
    tags: tuple[str, ...]  # wheel tags, most preferred first
    native: bool = False
    mirror: str = ""
    interpreter: str = "python3"  # native: the target's Python, asked for what is installed

    def marker_env(self) -> dict[str, str]:
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(self.arch, self.arch)
        if self.native:
            import platform

            machine = platform.machine()
        version = f"{self.python[0]}.{self.python[1]}"
        return {
            "python_version": version,
            "python_full_version": f"{version}.0",
            "platform_machine": machine,
            "platform_system": "Linux",
            "sys_platform": "linux",
            "os_name": "posix",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "extra": "",
        }


def riscv64_tags(python: tuple[int, int], glibc: tuple[int, int], arch: str = "riscv64") -> tuple[str, ...]:
    """Wheel tags a glibc Linux with this Python accepts: manylinux_2_X_<arch> down to 2_17, then pure.

    musllinux wheels do not load on glibc, so a Debian or openEuler target never takes them.
    """
    platforms = [f"manylinux_{glibc[0]}_{m}_{arch}" for m in range(glibc[1], 16, -1)]
    interp = f"cp{python[0]}{python[1]}"
    out = [str(t) for t in pkgtags.cpython_tags(python, [interp, "abi3", "none"], platforms)]
    out += [str(t) for t in pkgtags.compatible_tags(python, interp, platforms)]
    return tuple(dict.fromkeys(out))


def platform_for(target: Any) -> Platform:
    """The :class:`Platform` of a ``TargetConfig``."""
    image = target.image
    if target.kind == "native" or image is None:
        return Platform(
            target=target.name,
            distro="",
            release="",
            arch=os.uname().machine,
            python=(sys.version_info[0], sys.version_info[1]),
            tags=tuple(str(t) for t in pkgtags.sys_tags()),
            native=True,
            interpreter=target.python,
        )
    known = RELEASES.get((image.distro, image.release))
    if known is None:
        raise ConfigError(
            f'{target.file}: leapfrog does not know the Python and glibc of {image.distro} "{image.release}"; '
            f"add it to harness/deps.py RELEASES (known: {', '.join(f'{d} {r}' for d, r in RELEASES)})."
        )
    python, glibc = known
    return Platform(
        target=target.name,
        distro=image.distro,
        release=image.release,
        arch=image.arch,
        python=python,
        tags=riscv64_tags(python, glibc, image.arch),
        mirror=image.mirror if image.distro == "debian" else OPENEULER_MIRROR,
    )


# --------------------------------------------------------------------------- versions


def debian_upstream(version: str) -> str:
    """A Debian version's upstream part: no epoch, no Debian revision (``1:2.2.4+ds-1`` -> ``2.2.4+ds``)."""
    v = version.split(":", 1)[1] if re.match(r"\d+:", version) else version
    return v.rsplit("-", 1)[0] if "-" in v else v


def comparable(version: str) -> Version | None:
    """A distribution version as PEP 440 (repack suffixes dropped, ``~rc1`` a pre-release), or None."""
    up = debian_upstream(version).split("+", 1)[0].replace("~", "")
    try:
        return Version(up)
    except InvalidVersion:
        m = re.match(r"\d+(\.\d+)*", up)
        return Version(m.group(0)) if m else None


def fits(spec: SpecifierSet, version: str) -> bool:
    v = comparable(version)
    return v is not None and spec.contains(v, prereleases=True)


# --------------------------------------------------------------------------- answers


@dataclasses.dataclass(frozen=True)
class Offer:
    """What one source has for a requirement."""

    source: str  # "debian", "openeuler", "pypi-wheel", "pypi-sdist", "installed"
    package: str  # distribution package, wheel or sdist file name, or distribution name
    version: str
    fits: bool  # the version satisfies the requirement's specifier
    url: str = ""
    sha256: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v != ""}


@dataclasses.dataclass(frozen=True)
class Resolution:
    """One requirement on one target: every source's offer, and the one leapfrog takes."""

    target: str
    requirement: str
    name: str  # canonical distribution name
    offers: tuple[Offer, ...] = ()
    needed: bool = True  # False: the requirement's marker excludes this target

    @property
    def choice(self) -> str:
        if not self.needed:
            return "not-needed"
        for source, choice in (("installed", "installed"), ("debian", "distro"), ("openeuler", "distro")):
            if any(o.source == source and o.fits for o in self.offers):
                return choice
        if any(o.source == "pypi-wheel" and o.fits for o in self.offers):
            return "wheel"
        if any(o.source == "pypi-sdist" and o.fits for o in self.offers):
            return "sdist"
        return "none"

    @property
    def chosen(self) -> Offer | None:
        want = {"installed": ("installed",), "distro": ("debian", "openeuler"), "wheel": ("pypi-wheel",)}
        want["sdist"] = ("pypi-sdist",)
        sources = want.get(self.choice, ())
        return next((o for o in self.offers if o.source in sources and o.fits), None)

    def summary(self) -> str:
        """What exists, in one line (for a not-run cell's message)."""
        if not self.offers:
            return "nothing: no distribution package, no wheel and no sdist"
        return "; ".join(
            f"{o.source} {o.package} {o.version}{'' if o.fits else ' (does not fit)'}{f' ({o.note})' if o.note else ''}"
            for o in self.offers
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "requirement": self.requirement,
            "name": self.name,
            "choice": self.choice,
            "offers": [o.to_dict() for o in self.offers],
        }


@dataclasses.dataclass
class Sources:
    """How the resolver asks: a distribution index and PyPI (unit tests pass recorded fixtures).

    ``distro(platform)`` -> {package name: version}; ``pypi(name)`` -> PyPI's
    JSON for the project or None when PyPI has no such project;
    ``installed(platform, name)`` -> the installed version or None (native only).
    """

    distro: Callable[[Platform], dict[str, str]]
    pypi: Callable[[str], dict[str, Any] | None]
    installed: Callable[[Platform, str], str | None] = lambda _p, _n: None


def debian_candidates(name: str) -> list[str]:
    """Debian binary package names that may hold the PyPI distribution ``name``."""
    canon = canonicalize_name(name)
    out = [DEBIAN_NAMES[canon]] if canon in DEBIAN_NAMES else []
    out.append(f"python3-{canon}")
    if canon.startswith("python-"):
        out.append(f"python3-{canon[7:]}")
    if canon.startswith("py") and not canon.startswith("python"):
        out.append(f"python3-{canon[2:]}")
    return list(dict.fromkeys(out))


def openeuler_candidates(name: str) -> list[str]:
    """openEuler RPM names (compared case-insensitively): python3-<name> as PyPI spells it, and canonical."""
    canon = canonicalize_name(name)
    return list(dict.fromkeys([f"python3-{name}".lower(), f"python3-{canon}", *debian_candidates(name)]))


def _distro_offer(req: Requirement, platform: Platform, index: dict[str, str]) -> Offer | None:
    spec = req.specifier
    if platform.distro == "debian":
        for pkg in debian_candidates(req.name):
            if pkg in index:
                return Offer("debian", pkg, index[pkg], fits(spec, index[pkg]))
    elif platform.distro == "openeuler":
        lower = {k.lower(): k for k in index}
        for pkg in openeuler_candidates(req.name):
            if pkg in lower:
                real = lower[pkg]
                return Offer("openeuler", real, index[real], fits(spec, index[real]))
    return None


def _python_ok(requires: str | None, python: tuple[int, int]) -> bool:
    if not requires:
        return True
    try:
        return SpecifierSet(requires).contains(f"{python[0]}.{python[1]}.0", prereleases=True)
    except ValueError:
        return True  # a broken requires_python: pip ignores it too


def _pypi_offers(req: Requirement, platform: Platform, data: dict[str, Any]) -> list[Offer]:
    """The best fitting wheel (else the newest wheel, not fitting) and the best sdist."""
    accepted = set(platform.tags)
    releases = data.get("releases") or {}
    versions: list[tuple[Version, str]] = []
    for text in releases:
        with contextlib.suppress(InvalidVersion):
            versions.append((Version(text), text))
    versions.sort(reverse=True)
    spec = req.specifier
    wheel_fit = wheel_any = sdist_fit = sdist_any = None
    for version, text in versions:
        if version.is_prerelease and not spec.prereleases:
            continue  # as pip: a pre-release only when the specifier names one
        ok = spec.contains(version, prereleases=True)
        for f in releases[text]:
            if f.get("yanked") or not _python_ok(f.get("requires_python"), platform.python):
                continue
            filename = str(f.get("filename", ""))
            offer_kw = {"url": str(f.get("url", "")), "sha256": str((f.get("digests") or {}).get("sha256", ""))}
            if f.get("packagetype") == "bdist_wheel":
                try:
                    _, _, _, wtags = parse_wheel_filename(filename)
                except ValueError:
                    continue
                if not any(str(t) in accepted for t in wtags):
                    continue
                offer = Offer("pypi-wheel", filename, text, ok, **offer_kw)
                if ok and wheel_fit is None:
                    wheel_fit = offer
                if wheel_any is None:
                    wheel_any = offer
            elif f.get("packagetype") == "sdist":
                with contextlib.suppress(ValueError):
                    parse_sdist_filename(filename)
                    offer = Offer("pypi-sdist", filename, text, ok, **offer_kw)
                    if ok and sdist_fit is None:
                        sdist_fit = offer
                    if sdist_any is None:
                        sdist_any = offer
    return [o for o in (wheel_fit or wheel_any, sdist_fit or sdist_any) if o is not None]


def resolve(requirements: Iterable[Requirement], platform: Platform, sources: Sources) -> list[Resolution]:
    """Every requirement's offers on ``platform``; a requirement whose marker excludes it is not needed."""
    index = sources.distro(platform) if platform.distro else {}
    env = platform.marker_env()
    out: list[Resolution] = []
    for req in requirements:
        canon = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate(env):
            out.append(Resolution(platform.target, str(req), canon, needed=False))
            continue
        offers: list[Offer] = []
        if platform.native:
            have = sources.installed(platform, req.name)
            if have is not None:
                offers.append(Offer("installed", req.name, have, fits(req.specifier, have)))
        distro = _distro_offer(req, platform, index)
        if distro is not None:
            offers.append(distro)
        data = sources.pypi(req.name)
        if data is not None:
            offers.extend(_pypi_offers(req, platform, data))
        out.append(Resolution(platform.target, str(req), canon, tuple(offers)))
    return out


# --------------------------------------------------------------------------- real sources (network, cache)


def deps_cache() -> Path:
    from harness.images.cache import cache_root

    d = cache_root() / "deps"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _get(url: str, timeout: float = 60) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise DepsError(f'"{url}" is not an http(s) URL.')
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (scheme checked above)
            data: bytes = resp.read(MAX_DOWNLOAD + 1)
    except urllib.error.HTTPError as e:
        raise DepsError(f"downloading {url} failed: HTTP {e.code} {e.reason}.") from e
    except (urllib.error.URLError, OSError) as e:
        raise DepsError(f"cannot reach {url} ({e}); check the network (leapfrog deps reads package indexes).") from e
    if len(data) > MAX_DOWNLOAD:
        raise DepsError(f"{url} is larger than {MAX_DOWNLOAD >> 20} MB; leapfrog refuses to read it.")
    return data


def verify_inrelease(path: Path, keyring: str = DEBIAN_KEYRING) -> str:
    """The signed text of an ``InRelease`` file, after ``gpgv`` checked it against the Debian archive keyring."""
    if shutil.which("gpgv") is None:
        from harness.hostreq import install_hint

        raise DepsError(f"verifying {path} needs gpgv, which is not installed; install with: {install_hint(['gpgv'])}.")
    if not Path(keyring).is_file():
        raise DepsError(f"verifying {path} needs {keyring}; install with: apt-get install debian-archive-keyring.")
    out = path.with_name(path.name + ".verified")
    out.unlink(missing_ok=True)
    done = subprocess.run(
        ["gpgv", "--keyring", keyring, "--output", str(out), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0 or not out.is_file():
        out.unlink(missing_ok=True)
        raise DepsError(
            f"the signature of {path} does not verify with {keyring} (gpgv exit {done.returncode}: "
            f"{done.stderr.strip()[-400:]}); the index is not used. Update debian-archive-keyring or check the mirror."
        )
    text = out.read_text(encoding="utf-8", errors="replace")
    out.unlink()
    return text


def inrelease_sha256(signed: str, path: str) -> tuple[str, int]:
    """(digest, size) of ``path`` (``main/binary-riscv64/Packages.xz``) in a signed InRelease's SHA256 list."""
    section = re.search(r"^SHA256:\n((?:[ \t].*\n?)*)", signed, re.MULTILINE)
    if section:
        for line in section.group(1).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] == path and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
                return parts[0], int(parts[1])
    raise DepsError(f"the signed InRelease lists no SHA256 for {path}; the mirror does not serve that index.")


def inrelease_date(signed: str) -> str:
    m = re.search(r"^Date:\s*(.+)$", signed, re.MULTILINE)
    return m.group(1).strip() if m else ""


def parse_packages(text: str) -> dict[str, str]:
    """A Debian ``Packages`` index -> {package: version} (the highest version when listed twice)."""
    out: dict[str, str] = {}
    name = version = ""
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if name and version:
                old = out.get(name)
                ov, nv = (comparable(old) if old else None), comparable(version)
                if old is None or (ov is not None and nv is not None and nv > ov):
                    out[name] = version
            name = version = ""
        elif line.startswith("Package:"):
            name = line[8:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
    return out


@dataclasses.dataclass(frozen=True)
class IndexInfo:
    """Where a distribution index came from, for the report."""

    url: str
    date: str  # the release file's Date
    fetched: str  # when this host fetched it (ISO 8601)
    verified: str  # how it was checked


def debian_index(release: str, arch: str, mirror: str = DEBIAN_MIRROR) -> tuple[dict[str, str], IndexInfo]:
    """``main/binary-<arch>/Packages.xz`` of ``release``: cached under ``<cache>/deps/debian/`` for a day, verified.

    The InRelease's signature is checked with gpgv against the Debian archive
    keyring, and the Packages.xz against the SHA-256 the signed text lists; a
    cached copy is checked again against the cached, verified InRelease.
    """
    from harness.config import check_release

    check_release(release)
    folder = deps_cache() / "debian" / re.sub(r"[^A-Za-z0-9._-]", "_", f"{mirror}") / release
    folder.mkdir(parents=True, exist_ok=True)
    rel_path = f"main/binary-{arch}/Packages.xz"
    base = f"{mirror.rstrip('/')}/dists/{release}"
    inrelease = folder / "InRelease"
    packages = folder / f"Packages-{arch}.xz"
    stamp = folder / f"Packages-{arch}.json"
    fresh = False
    with contextlib.suppress(OSError, ValueError, KeyError):
        fetched = _dt.datetime.fromisoformat(json.loads(stamp.read_text())["fetched"])
        fresh = _dt.datetime.now(_dt.UTC) - fetched < INDEX_MAX_AGE and packages.is_file() and inrelease.is_file()
    stale = ""
    for _attempt in range(2):
        if not fresh:
            try:
                data = _get(f"{base}/InRelease")
            except DepsError as e:
                if not (packages.is_file() and inrelease.is_file()):
                    raise
                stale = f"; the mirror was not reachable ({e}), so the cached index of an earlier day is used"
            else:
                tmp = folder / "InRelease.new"
                tmp.write_bytes(data)
                tmp.replace(inrelease)
        signed = verify_inrelease(inrelease)
        digest, size = inrelease_sha256(signed, rel_path)
        have = hashlib.sha256(packages.read_bytes()).hexdigest() if packages.is_file() else ""
        if have == digest:
            break
        if fresh:  # the cached index does not match its own InRelease: fetch both again
            fresh = False
            continue
        if stale:
            raise DepsError(f"{packages} does not match its cached InRelease and {base} cannot be reached{stale}.")
        data = _get(f"{base}/{rel_path}")
        got = hashlib.sha256(data).hexdigest()
        if got != digest or len(data) != size:
            raise DepsError(
                f"{base}/{rel_path} does not match the SHA-256 its signed InRelease lists "
                f"(expected {digest}, got {got}); the mirror may be mid-update, try again later."
            )
        tmp_pkg = folder / f"Packages-{arch}.xz.new"
        tmp_pkg.write_bytes(data)
        tmp_pkg.replace(packages)
        break
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    if not fresh and not stale:
        stamp.write_text(json.dumps({"fetched": now, "date": inrelease_date(signed)}))
    with contextlib.suppress(OSError, ValueError, KeyError):
        now = json.loads(stamp.read_text())["fetched"]
    info = IndexInfo(
        url=f"{base}/{rel_path}",
        date=inrelease_date(signed),
        fetched=now,
        verified=f"InRelease signature (gpgv, {DEBIAN_KEYRING}) and SHA-256{stale}",
    )
    try:
        text = lzma.decompress(packages.read_bytes()).decode("utf-8", errors="replace")
    except lzma.LZMAError as e:
        raise DepsError(f"{packages} is not a valid .xz file ({e}); remove it and run again.") from e
    return parse_packages(text), info


def parse_primary(data: bytes, arch: str) -> dict[str, str]:
    """openEuler's ``primary.xml`` -> {rpm name: version} for ``arch`` and noarch (the highest version)."""
    out: dict[str, str] = {}
    ns = "{http://linux.duke.edu/metadata/common}"
    # repodata is read from the distribution's own mirror; ElementTree (expat) resolves no external entities.
    root = ElementTree.fromstring(data)  # noqa: S314
    for pkg in root.iter(f"{ns}package"):
        name = pkg.findtext(f"{ns}name") or ""
        parch = pkg.findtext(f"{ns}arch") or ""
        ver = pkg.find(f"{ns}version")
        if not name or ver is None or parch not in (arch, "noarch"):
            continue
        version = ver.get("ver", "")
        old = out.get(name)
        if old is None or (comparable(version) or Version("0")) > (comparable(old) or Version("0")):
            out[name] = version
    return out


def primary_location(repomd: bytes) -> tuple[str, str]:
    """(href, sha256) of the primary metadata in ``repodata/repomd.xml``."""
    ns = "{http://linux.duke.edu/metadata/repo}"
    root = ElementTree.fromstring(repomd)  # noqa: S314 (see parse_primary)
    for data in root.iter(f"{ns}data"):
        if data.get("type") == "primary":
            loc = data.find(f"{ns}location")
            checksum = data.find(f"{ns}checksum")
            if loc is not None and loc.get("href"):
                sha = checksum is not None and checksum.get("type") == "sha256"
                digest = (checksum.text or "") if sha and checksum is not None else ""
                return str(loc.get("href")), digest.strip()
    raise DepsError("repomd.xml lists no primary metadata; the URL is not a yum/dnf repository.")


def openeuler_index(release: str, arch: str, mirror: str = OPENEULER_MIRROR) -> tuple[dict[str, str], IndexInfo]:
    """openEuler's ``everything`` repository for ``release`` and ``arch`` (repomd.xml -> primary.xml.gz).

    Checked against the SHA-256 repomd.xml gives; repomd.xml itself is
    fetched over HTTPS (openEuler signs packages, not this metadata).
    """
    base = f"{mirror.rstrip('/')}/openEuler-{release}/everything/{arch}"
    repomd = _get(f"{base}/repodata/repomd.xml")
    href, digest = primary_location(repomd)
    data = _get(f"{base}/{href}")
    if digest and hashlib.sha256(data).hexdigest() != digest:
        raise DepsError(f"{base}/{href} does not match the SHA-256 in repomd.xml; try again later.")
    raw = gzip.decompress(data) if href.endswith(".gz") else data
    info = IndexInfo(
        url=f"{base}/{href}",
        date="",
        fetched=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        verified="SHA-256 from repomd.xml (HTTPS)" if digest else "HTTPS only",
    )
    return parse_primary(raw, arch), info


class LiveSources:
    """The real sources: mirrors and PyPI over the network, each index fetched once per process."""

    def __init__(self) -> None:
        self.indexes: dict[tuple[str, str, str], tuple[dict[str, str], IndexInfo]] = {}
        self.errors: dict[str, str] = {}  # target -> why its distribution index is missing
        self._pypi: dict[str, dict[str, Any] | None] = {}

    def distro(self, platform: Platform) -> dict[str, str]:
        key = (platform.distro, platform.release, platform.arch)
        if key not in self.indexes:
            try:
                if platform.distro == "debian":
                    self.indexes[key] = debian_index(platform.release, platform.arch, platform.mirror or DEBIAN_MIRROR)
                else:
                    self.indexes[key] = openeuler_index(platform.release, platform.arch)
            except DepsError as e:
                self.errors[platform.target] = str(e)
                return {}
        return self.indexes[key][0]

    def pypi(self, name: str) -> dict[str, Any] | None:
        canon = canonicalize_name(name)
        if canon not in self._pypi:
            try:
                url = PYPI_JSON.format(name=canon)
                data = json.loads(_get(url))
                for files in (data.get("releases") or {}).values():
                    for f in files:  # a PyPI mirror may give file URLs relative to the JSON's
                        f["url"] = urllib.parse.urljoin(url, str(f.get("url", "")))
                self._pypi[canon] = data
            except DepsError as e:
                if "HTTP 404" not in str(e):
                    raise
                self._pypi[canon] = None
        return self._pypi[canon]

    def installed(self, platform: Platform, name: str) -> str | None:
        """The version in the interpreter ``native`` runs (``python3`` on PATH), or None."""
        python = shutil.which(platform.interpreter) or platform.interpreter
        done = subprocess.run(
            [python, "-c", "import sys, importlib.metadata as m; print(m.version(sys.argv[1]))", name],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if done.returncode != 0:
            return None
        return done.stdout.strip() or None

    def sources(self) -> Sources:
        return Sources(distro=self.distro, pypi=self.pypi, installed=self.installed)


# --------------------------------------------------------------------------- the report of `leapfrog deps`


@dataclasses.dataclass
class TargetDeps:
    """One target's column: its platform, where its distribution index came from, and each requirement."""

    platform: Platform
    resolutions: list[Resolution]
    index: IndexInfo | None = None
    index_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        p = self.platform
        return {
            "target": p.target,
            "distro": p.distro or "native",
            "release": p.release,
            "arch": p.arch,
            "python": f"{p.python[0]}.{p.python[1]}",
            "wheel_tags": list(p.tags[:3]) + (["…"] if len(p.tags) > 3 else []),
            "index": dataclasses.asdict(self.index) if self.index else None,
            "index_error": self.index_error,
            "requirements": [r.to_dict() for r in self.resolutions],
        }


@dataclasses.dataclass
class DepsReport:
    source: str  # the requirements file or project folder
    requirements: list[str]
    targets: list[TargetDeps]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "requirements": self.requirements,
            "targets": [t.to_dict() for t in self.targets],
        }

    def rows(self) -> list[tuple[str, list[Resolution]]]:
        """One row per requirement: its resolution on each target, in target order."""
        return [(req, [t.resolutions[i] for t in self.targets]) for i, req in enumerate(self.requirements)]


def build_report(
    source: str, requirements: list[Requirement], targets: Iterable[Any], live: LiveSources | None = None
) -> DepsReport:
    """Resolve ``requirements`` on each target config with the real sources."""
    live = live or LiveSources()
    columns = []
    for cfg in targets:
        platform = platform_for(cfg)
        res = resolve(requirements, platform, live.sources())
        index = live.indexes.get((platform.distro, platform.release, platform.arch))
        columns.append(TargetDeps(platform, res, index[1] if index else None, live.errors.get(platform.target, "")))
    return DepsReport(source, [str(r) for r in requirements], columns)


def cell_text(res: Resolution) -> str:
    """A requirement on a target in a few words: where it comes from and which version."""
    chosen = res.chosen
    choice = res.choice
    if choice == "not-needed":
        return "not needed (marker)"
    if chosen is None:
        best = next((o for o in res.offers if o.source.startswith("pypi")), None)
        return "none" + (f" ({best.version} does not fit)" if best else "")
    if choice == "distro":
        return f"{chosen.package} {debian_upstream(chosen.version)}"
    if choice == "installed":
        return f"installed {chosen.version}"
    if choice == "wheel":
        return f"wheel {chosen.version}" + (" (pure)" if chosen.package.endswith("-none-any.whl") else "")
    return f"sdist only {chosen.version}"


def others_text(res: Resolution) -> str:
    """The sources not taken, in a few words ("wheel 2.50.5, sdist 2.50.5", "no wheel; sdist 2.5.5")."""
    if not res.needed:
        return ""
    chosen = res.chosen
    names = {"debian": "deb", "openeuler": "rpm", "pypi-wheel": "wheel", "pypi-sdist": "sdist"}
    names["installed"] = "installed"
    parts = [
        f"{names[o.source]} {debian_upstream(o.version)}{'' if o.fits else ' (no fit)'}"
        for o in res.offers
        if o is not chosen
    ]
    if not any(o.source == "pypi-wheel" for o in res.offers):
        parts.insert(0, "no wheel")
    return ", ".join(parts)


_STYLE = {
    "distro": "green",
    "installed": "green",
    "wheel": "cyan",
    "sdist": "yellow",
    "none": "red",
    "not-needed": "dim",
}


def rich_table(report: DepsReport) -> Any:
    """The terminal table (rich): one row per requirement, one column per target."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"dependencies of {escape(report.source)}", show_lines=False)
    table.add_column("requirement")
    for t in report.targets:
        p = t.platform
        table.add_column(f"{escape(p.target)}\n(Python {p.python[0]}.{p.python[1]})")
    for req, cells in report.rows():
        table.add_row(
            escape(req),
            *(f"[{_STYLE[r.choice]}]{escape(cell_text(r))}[/]\n[dim]{escape(others_text(r))}[/]" for r in cells),
        )
    return table


def _env() -> Any:
    """The report's own Jinja environment (autoescape, StrictUndefined, cached templates)."""
    from harness.report.html import _env as report_env

    return report_env()


def render_html(report: DepsReport, *, standalone: bool = True) -> str:
    """The deps section (``standalone=False``: the section alone, for another page to include), escaped."""
    template = _env().get_template("deps.html.j2")
    rows = [(req, [(r.choice, cell_text(r), others_text(r)) for r in cells]) for req, cells in report.rows()]
    return str(template.render(report=report.to_dict(), rows=rows, standalone=standalone))


def requirements_of(
    requirements: Path | None, project: Path | None, extras: Iterable[str] = (), groups: Iterable[str] = ()
) -> tuple[str, list[Requirement]]:
    """(what was read, its requirements) for ``-r FILE`` or ``--project PATH`` (exactly one of them)."""
    if (requirements is None) == (project is None):
        raise ConfigError("give exactly one of -r REQUIREMENTS and --project PATH.")
    if requirements is not None:
        if extras or groups:
            raise ConfigError("--extra and --group choose from a project's pyproject.toml; use them with --project.")
        return str(requirements), read_requirements(requirements)
    assert project is not None
    info = read_project(project, extras, groups)
    if not info.static:
        raise ConfigError(
            f"{project}: its dependencies are computed when it is built (setup.py, or dynamic in pyproject.toml), "
            "so leapfrog deps cannot read them; pass them with -r requirements.txt."
        )
    return f"{info.name} ({project})", info.requirements
