"""What each source offers for a requirement on a platform, and the one leapfrog takes (:func:`resolve`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from harness.deps.platforms import Platform
from harness.deps.versions import fits

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
    # build backends and tools a --build-in-target build may require
    "cython": "cython3",
    "meson": "meson",
    "meson-python": "python3-mesonpy",
    "flit-core": "flit",
}

#: Where a requirement is taken from, in order of preference.
CHOICES = ("not-needed", "installed", "distro", "wheel", "sdist", "none")
#: The sources behind each choice that takes an offer, in order of preference (the first that fits wins).
TAKEN_FROM: dict[str, tuple[str, ...]] = {
    "installed": ("installed",),
    "distro": ("debian", "openeuler"),
    "wheel": ("pypi-wheel",),
    "sdist": ("pypi-sdist",),
}


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
        for choice, sources in TAKEN_FROM.items():
            if any(o.source in sources and o.fits for o in self.offers):
                return choice
        return "none"

    @property
    def chosen(self) -> Offer | None:
        sources = TAKEN_FROM.get(self.choice, ())
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
    best: dict[str, Offer] = {}  # source -> the newest offer that fits
    newest: dict[str, Offer] = {}  # source -> the newest offer
    for version, text in versions:
        if version.is_prerelease and not spec.prereleases:
            continue  # as pip: a pre-release only when the specifier names one
        ok = spec.contains(version, prereleases=True)
        for f in releases[text]:
            if f.get("yanked") or not _python_ok(f.get("requires_python"), platform.python):
                continue
            filename = str(f.get("filename", ""))
            source = _pypi_source(filename, str(f.get("packagetype")), accepted)
            if source is None:
                continue
            sha256 = str((f.get("digests") or {}).get("sha256", ""))
            offer = Offer(source, filename, text, ok, url=str(f.get("url", "")), sha256=sha256)
            if ok:
                best.setdefault(source, offer)
            newest.setdefault(source, offer)
    picked = (best.get(s) or newest.get(s) for s in ("pypi-wheel", "pypi-sdist"))
    return [o for o in picked if o is not None]


def _pypi_source(filename: str, packagetype: str, accepted: set[str]) -> str | None:
    """The source a PyPI file counts as: a wheel whose tags the target accepts, an sdist, or None (neither)."""
    try:
        if packagetype == "bdist_wheel":
            _, _, _, wtags = parse_wheel_filename(filename)
            return "pypi-wheel" if any(str(t) in accepted for t in wtags) else None
        if packagetype == "sdist":
            parse_sdist_filename(filename)
            return "pypi-sdist"
    except ValueError:
        return None
    return None


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
