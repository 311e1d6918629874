"""TOML -> typed objects.

``targets/*.toml`` become :class:`TargetConfig`, ``suites/*/suite.toml`` become
:class:`SuiteConfig`.  Every error names the file, the key and what was
expected, and suggests the closest valid name for a typo.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.errors import ConfigError

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


def suggest(word: str, choices: typing.Iterable[str]) -> str:
    """' (did you mean "x"?)' or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (arg, *_) = typing.get_args(tp)
        inner = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}.get(arg, _type_name(arg))
        return f"a list of {inner}"
    if origin is dict:
        return "a table of strings"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity in ``value`` (searching lists and tables), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:
        found = _non_finite(item)
        if found is not None:
            return found
    return None


def _check_value(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_check_value(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (arg,) = typing.get_args(tp)
        return isinstance(value, list) and all(_check_value(v, arg) for v in value)
    if origin is dict:
        _, varg = typing.get_args(tp)
        return isinstance(value, dict) and all(isinstance(k, str) and _check_value(v, varg) for k, v in value.items())
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _unwrap_optional(tp: Any) -> Any:
    """``X | None`` -> ``X`` when X is a dataclass (a TOML table that may be absent)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and dataclasses.is_dataclass(args[0]):
            return args[0]
    return tp


def build_dataclass(cls: type[Any], table: dict[str, Any], *, file: Path, where: str = "") -> Any:
    """Make ``cls`` from a TOML table, checking keys and types.

    ``where`` is the dotted key prefix used in messages ("" for top level).
    Nested dataclass fields take a TOML table.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{where}{key}"
        if key not in fields:
            valid = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f'{file}: unknown key "{dotted}"{suggest(key, fields)}; valid keys here: {valid}.')
        tp = _unwrap_optional(hints[key])
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f'{file}: key "{dotted}" must be a table ([{dotted}]).')
            kwargs[key] = build_dataclass(tp, value, file=file, where=f"{dotted}.")  # type: ignore[arg-type]
            continue
        if not _check_value(value, tp):
            raise ConfigError(f'{file}: key "{dotted}" must be {_type_name(tp)}, not {value!r}.')
        bad = _non_finite(value)
        if bad is not None:  # TOML allows nan and inf; no leapfrog setting means either
            raise ConfigError(f'{file}: key "{dotted}" holds {bad!r}; write a finite number.')
        kwargs[key] = float(value) if tp is float else value
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f'{file}: missing required key "{where}{missing[0]}".')
    try:
        return cls(**kwargs)
    except ConfigError as e:  # a dataclass's own checks (__post_init__): add the file
        raise ConfigError(f"{file}: {e}") from e


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: file not found.") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}.") from e
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not valid TOML: byte {e.start} is not UTF-8 ({e.object[e.start : e.start + 1]!r}); "
            "save the file as UTF-8."
        ) from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it: {e.strerror or e}.") from e


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

    def __post_init__(self) -> None:
        check_release(self.release)
        if not ARCH.match(self.arch):
            raise ConfigError(f'key "image.arch" is {self.arch!r}, which is not an architecture name like "riscv64".')
        if not self.mirror or self.mirror.startswith("-") or any(c in self.mirror for c in "\n\r\0"):
            raise ConfigError(f'key "image.mirror" is {self.mirror!r}; give the URL of a package mirror.')
        check_package_names(self.packages, self.distro, "image.packages")
        if self.sha256 and not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ConfigError(f'key "image.sha256" must be 64 hexadecimal digits (a SHA-256), not {self.sha256!r}.')


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
    from harness.kinds import KINDS

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

    def packages_for(self, distro: str) -> list[str]:
        return list(getattr(self.packages, distro, []))


def load_suite(folder: Path) -> SuiteConfig:
    path = folder / "suite.toml"
    sf: SuiteFile = build_dataclass(SuiteFile, read_toml(path), file=path)
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
    """``targets/*.toml`` by name, each file read (and its backend imported) on first use.

    A run of one chroot target then never imports paramiko or the docker SDK;
    listing or iterating reads every file, so ``leapfrog list targets`` and a
    run with the default targets still report any broken file.
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
