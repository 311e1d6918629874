"""Reading a project's requirements: a ``requirements.txt``, or ``pyproject.toml``'s dependencies, extras and groups."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from harness.errors import ConfigError


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
