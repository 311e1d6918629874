"""TOML -> typed objects.

``targets/*.toml`` become :class:`TargetConfig`, ``suites/*/suite.toml`` become
:class:`SuiteConfig`.  Every error names the file, the key and what was
expected, and suggests the closest valid name for a typo (the checking of
keys and types is :mod:`harness.tomlread`).  A target file is checked against
its kind's ``Options`` from :mod:`harness.kinds`: no backend is imported.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigError
from harness.kinds import KINDS
from harness.tomlread import build_dataclass, read_toml, suggest

KNOWN_DISTROS = ("debian", "openeuler")
SUITE_KINDS = ("in-target", "host-driven")

#: Debian package names (Debian Policy 5.6.1), with an optional ":arch" qualifier.
DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9][a-z0-9-]*)?\Z")
#: RPM package names as openEuler's repositories use them (python3-PyYAML, libstdc++).
RPM_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")
#: Release names: Debian suites and codenames (trixie, bookworm-backports), openEuler's 24.03-LTS-SP1.
RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")
#: Architecture names (riscv64, amd64, x86_64).
ARCH = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_PACKAGE_NAME = {"debian": DEBIAN_PACKAGE, "openeuler": RPM_PACKAGE}


def check_package_names(names: typing.Iterable[str], distro: str, key: str) -> None:
    """Refuse a package name that is not one (above all one starting with "-", which a tool reads as an option).

    ``key`` names where the list came from, for the message.  A distro
    leapfrog does not know is left to the check of ``image.distro``.
    """
    pattern = _PACKAGE_NAME.get(distro)
    if pattern is None:
        return
    for name in names:
        if not pattern.match(name):
            rule = (
                "lower-case letters, digits, and + . - after the first character"
                if distro == "debian"
                else "letters, digits, and _ . + - after the first character"
            )
            raise ConfigError(
                f'key "{key}" holds {name!r}, which is not a valid {distro} package name ({rule}); fix or remove it.'
            )


def check_release(release: str, key: str = "image.release") -> None:
    """Refuse a release name that is not one (a leading "-" would become a tool's option)."""
    if not RELEASE.match(release):
        raise ConfigError(
            f'key "{key}" is {release!r}, which is not a release name; use letters, digits and . _ + - '
            'starting with a letter or digit, like "trixie" or "24.03-LTS-SP1".'
        )


# --------------------------------------------------------------------------- images


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """The userland a target runs.

    ``source = "build"`` (default): leapfrog builds it (Debian, mmdebstrap).
    Other sources are for images the user supplies: ``tarball`` (a root
    filesystem or ``docker save`` archive at ``path`` or ``url``), ``docker``
    (an image ``ref``), ``qcow2`` (a disk at ``path``/``url`` with firmware).
    """

    distro: str = "debian"
    release: str = "trixie"
    arch: str = "riscv64"
    source: str = "build"
    mirror: str = "http://deb.debian.org/debian"
    packages: list[str] = dataclasses.field(default_factory=list)  # always installed
    ref: str = ""
    path: str = ""
    url: str = ""
    sha256: str = ""
    firmware: list[str] = dataclasses.field(default_factory=list)
    #: No "sha256" known: take it from "<url>.sha256sum" on the same mirror at the first
    #: fetch, record it, and hold every later fetch to it (trust on first use).
    trust_sha256sum: bool = False
    #: openEuler built with dnf: the ISA profile repository, everything/riscv64/<profile>/ (rva20, rva23).
    profile: str = ""
    #: openEuler built with dnf: the repository's signing key (https://, http:// or file:// URL) ...
    gpgkey: str = ""
    #: ... which dnf checks every package against; false only for an unsigned repository (a local stand-in).
    gpgcheck: bool = True

    def __post_init__(self) -> None:
        check_release(self.release)
        if not ARCH.match(self.arch):
            raise ConfigError(f'key "image.arch" is {self.arch!r}, which is not an architecture name like "riscv64".')
        if not self.mirror or self.mirror.startswith("-") or any(c in self.mirror for c in "\n\r\0"):
            raise ConfigError(f'key "image.mirror" is {self.mirror!r}; give the URL of a package mirror.')
        check_package_names(self.packages, self.distro, "image.packages")
        if self.sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ConfigError(f'key "image.sha256" must be 64 hexadecimal digits (a SHA-256), not {self.sha256!r}.')
        _check_dnf_keys(self)


#: openEuler's riscv64 ISA profile repositories (24.03-LTS-SP3: everything/riscv64/rva20/ and rva23/).
OPENEULER_PROFILES = ("rva20", "rva23")


def _check_dnf_keys(spec: ImageSpec) -> None:
    """The keys of an openEuler image built with dnf (profile, mirror, gpgkey, gpgcheck), checked together."""
    if spec.profile and spec.profile not in OPENEULER_PROFILES:
        raise ConfigError(
            f'key "image.profile" is {spec.profile!r}{suggest(spec.profile, OPENEULER_PROFILES)}; expected one of: '
            f"{', '.join(OPENEULER_PROFILES)} (openEuler 24.03-LTS-SP3's repository everything/riscv64/<profile>/)."
        )
    if spec.gpgkey and (not re.match(r"(https?|file)://[^\s]+\Z", spec.gpgkey)):
        raise ConfigError(
            f'key "image.gpgkey" is {spec.gpgkey!r}; give the signing key as a https://, http:// or file:// URL.'
        )
    if spec.distro != "openeuler" or spec.source != "build":
        if spec.profile or spec.gpgkey:
            key = "image.profile" if spec.profile else "image.gpgkey"
            raise ConfigError(
                f'key "{key}" applies only to openEuler images leapfrog builds with dnf '
                '(distro = "openeuler", source = "build"); remove it.'
            )
        return
    if not spec.profile:
        raise ConfigError(
            'an openEuler image built with dnf (distro = "openeuler", source = "build") needs key "image.profile": '
            f"one of {', '.join(OPENEULER_PROFILES)}."
        )
    if spec.mirror == ImageSpec.mirror or not re.match(r"(https?|file)://", spec.mirror):
        raise ConfigError(
            f'key "image.mirror" is {spec.mirror!r}; an openEuler image built with dnf needs the URL of an openEuler '
            "repository root holding openEuler-<release>/everything/riscv64/<profile>/riscv64/, like "
            '"https://repo.openeuler.org".'
        )
    if spec.gpgcheck and not spec.gpgkey:
        raise ConfigError(
            'openEuler\'s repositories are signed, so key "image.gpgkey" must name the signing key dnf checks '
            'packages with (like "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-openEuler", or the RPM-GPG-KEY-openEuler '
            "beside the repository); for an unsigned repository (a local stand-in) set image.gpgcheck = false."
        )


# --------------------------------------------------------------------------- targets


@dataclasses.dataclass(frozen=True)
class TargetFile:
    """Keys every target file may have; the backend adds its own (``Options``)."""

    kind: str
    description: str = ""
    arch: str = ""  # declared architecture; defaults to the image's
    python: str = "python3"
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    image: ImageSpec | None = None
    default: bool = True  # part of `leapfrog run` when no --target is given (if it can run here)


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    name: str
    kind: str
    file: Path
    description: str
    arch: str
    python: str
    env: dict[str, str]
    image: ImageSpec | None
    options: Any  # the backend's Options dataclass instance
    default: bool = True


def load_target(path: Path) -> TargetConfig:
    data = read_toml(path)
    kind = data.get("kind")
    if kind is None:
        raise ConfigError(f'{path}: missing required key "kind"; one of: {", ".join(KINDS)}.')
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(
            f'{path}: key "kind" is {kind!r}{suggest(str(kind), KINDS)}; expected one of: {", ".join(KINDS)}.'
        )
    info = KINDS[kind]
    common_keys = {f.name for f in dataclasses.fields(TargetFile)}
    option_keys = {f.name for f in dataclasses.fields(info.options)}
    common = {k: v for k, v in data.items() if k in common_keys or k not in option_keys}
    opts = {k: v for k, v in data.items() if k in option_keys and k not in common_keys}
    unknown = [k for k in common if k not in common_keys]
    if unknown:
        valid = sorted(common_keys | option_keys)
        raise ConfigError(
            f'{path}: unknown key "{unknown[0]}"{suggest(unknown[0], valid)} for kind '
            f'"{kind}"; valid keys: {", ".join(valid)}.'
        )
    base: TargetFile = build_dataclass(TargetFile, common, file=path)
    options = build_dataclass(info.options, opts, file=path)
    image = base.image
    if image is not None and image.distro not in KNOWN_DISTROS:
        raise ConfigError(
            f'{path}: key "image.distro" is "{image.distro}"{suggest(image.distro, KNOWN_DISTROS)}; '
            f"expected one of: {', '.join(KNOWN_DISTROS)}."
        )
    if info.needs_image and image is None:
        raise ConfigError(f'{path}: kind "{kind}" needs an [image] table (distro, release, arch).')
    arch = base.arch or (image.arch if image else "")
    return TargetConfig(
        name=path.stem,
        kind=kind,
        file=path,
        description=base.description,
        arch=arch,
        python=base.python,
        env=dict(base.env),
        image=image,
        options=options,
        default=base.default,
    )


# --------------------------------------------------------------------------- suites


@dataclasses.dataclass(frozen=True)
class SuitePackages:
    debian: list[str] = dataclasses.field(default_factory=list)
    openeuler: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class SuiteFile:
    description: str = ""
    kind: str = "in-target"
    timeout: float = 900.0  # whole cell, host side
    case_timeout: float | str = 300.0  # one case, inside the target; "auto": scaled from the baseline
    key_packages: list[str] = dataclasses.field(default_factory=list)
    packages: SuitePackages = dataclasses.field(default_factory=SuitePackages)
    settings: dict[str, str | int | float | bool] = dataclasses.field(default_factory=dict)
    ports: list[int] = dataclasses.field(default_factory=list)  # servers listen here inside the target
    workers: int | str = 1  # pytest processes for the cell, or "auto"; --workers wins
    parallel: bool = True  # false: never split the cell over workers, whatever --workers says


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    name: str
    path: Path  # the suite folder
    description: str
    kind: str
    timeout: float
    case_timeout: float  # seconds; with auto_timeout, the fallback for a case with no baseline duration
    key_packages: list[str]
    packages: SuitePackages
    settings: dict[str, str | int | float | bool]
    ports: list[int] = dataclasses.field(default_factory=list)
    #: ``case_timeout = "auto"``: each case's timeout is scaled from the baseline (harness.autotimeout).
    auto_timeout: bool = False
    #: Why this suite's cell is not run on its target (``--project`` with a dependency nothing provides).
    not_run: str = ""
    #: suite.toml ``workers``: pytest processes to split the cell over, "auto" (the target's cores) or None (not set).
    workers: int | Literal["auto"] | None = None
    #: suite.toml ``parallel = false``: the cell always runs in one process.
    parallel: bool = True

    def packages_for(self, distro: str) -> list[str]:
        return list(getattr(self.packages, distro, []))


def suite_workers(value: int | str, path: Path) -> int | Literal["auto"]:
    """suite.toml's ``workers``, checked: a count of 1 to 64, or ``"auto"``."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, int) and 1 <= value <= 64:
        return value
    raise ConfigError(
        f'{path}: key "workers" is {value!r}; write a number of pytest processes from 1 to 64, or "auto" for the '
        f"target's usable cores (1 keeps the suite serial unless --workers says otherwise; "
        f'"parallel = false" keeps it serial always).'
    )


def load_suite(folder: Path) -> SuiteConfig:
    path = folder / "suite.toml"
    table = read_toml(path)
    sf: SuiteFile = build_dataclass(SuiteFile, table, file=path)
    if sf.kind not in SUITE_KINDS:
        raise ConfigError(
            f'{path}: key "kind" is "{sf.kind}"{suggest(sf.kind, SUITE_KINDS)}; '
            f"expected one of: {', '.join(SUITE_KINDS)}."
        )
    auto = isinstance(sf.case_timeout, str)
    if auto and str(sf.case_timeout).strip().lower() != "auto":
        raise ConfigError(
            f'{path}: key "case_timeout" is {sf.case_timeout!r}; write a number of seconds, or "auto" to scale '
            f"each case's timeout from its baseline duration."
        )
    case_timeout = 300.0 if auto else float(sf.case_timeout)
    for key, value in (("timeout", sf.timeout), ("case_timeout", case_timeout)):
        if value <= 0:
            raise ConfigError(f'{path}: key "{key}" must be a positive number of seconds.')
    for distro in KNOWN_DISTROS:
        try:
            check_package_names(getattr(sf.packages, distro), distro, f"packages.{distro}")
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e
    for port in sf.ports:
        if not 1 <= port <= 65535:
            raise ConfigError(f'{path}: key "ports" holds {port}, which is not a TCP port; use 1-65535.')
    return SuiteConfig(
        workers=suite_workers(sf.workers, path) if "workers" in table else None,
        parallel=sf.parallel,
        name=folder.name,
        path=folder,
        description=sf.description,
        kind=sf.kind,
        timeout=sf.timeout,
        case_timeout=case_timeout,
        key_packages=list(sf.key_packages),
        packages=sf.packages,
        settings=dict(sf.settings),
        ports=list(sf.ports),
        auto_timeout=auto,
    )


# --------------------------------------------------------------------------- project


class LazyTargets(Mapping[str, TargetConfig]):
    """``targets/*.toml`` by name, each file read and checked on first use.

    A broken file then breaks only what uses it: ``leapfrog run -t native``
    works beside a target file with a typo, while listing or iterating reads
    every file, so ``leapfrog list targets`` and a run with the default targets
    still report it.  (Reading a file imports no backend: :mod:`harness.kinds`.)
    """

    def __init__(self, files: dict[str, Path]) -> None:
        self._files = files
        self._loaded: dict[str, TargetConfig] = {}

    def __getitem__(self, name: str) -> TargetConfig:
        if name not in self._loaded:
            self._loaded[name] = load_target(self._files[name])
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, name: object) -> bool:
        return name in self._files


@dataclasses.dataclass
class Project:
    """Everything leapfrog knows before it plans a run."""

    root: Path
    targets: Mapping[str, TargetConfig]
    suites: dict[str, SuiteConfig]

    def pick_targets(self, names: list[str]) -> list[TargetConfig]:
        return [self._pick(self.targets, n, "target", "targets/*.toml") for n in names]

    def pick_suites(self, names: list[str]) -> list[SuiteConfig]:
        return [self._pick(self.suites, n, "suite", "suites/*/suite.toml") for n in names]

    @staticmethod
    def _pick(table: Mapping[str, Any], name: str, what: str, where: str) -> Any:
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            raise ConfigError(f'unknown {what} "{name}"{suggest(name, table)}; known {what}s ({where}): {known}.')
        return table[name]


def default_root() -> Path:
    """The folder holding ``targets/`` and ``suites/``.

    The current directory if it has them, else the source checkout leapfrog
    was installed from (``pip install -e .``).
    """
    cwd = Path.cwd()
    if (cwd / "targets").is_dir() and (cwd / "suites").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


def load_project(
    root: Path | None = None,
    *,
    targets_dir: Path | None = None,
    suites_dir: Path | None = None,
) -> Project:
    root = root or default_root()
    tdir = targets_dir or root / "targets"
    sdir = suites_dir or root / "suites"
    if not tdir.is_dir():
        raise ConfigError(f"{tdir}: targets folder not found; pass --targets-dir or run from a checkout.")
    if not sdir.is_dir():
        raise ConfigError(f"{sdir}: suites folder not found; pass --suites-dir or run from a checkout.")
    targets = LazyTargets({p.stem: p for p in sorted(tdir.glob("*.toml"))})
    suites = {p.parent.name: load_suite(p.parent) for p in sorted(sdir.glob("*/suite.toml"))}
    return Project(root=root, targets=targets, suites=suites)
