"""TOML tables to typed dataclasses, with messages that name the file and the key.

:func:`build_dataclass` checks every key and type of a table against a
dataclass (nested dataclasses take nested tables) and suggests the closest
valid key for a typo; :func:`read_toml` turns every way of failing to read a
file into one :class:`~harness.errors.ConfigError`.  Used by
:mod:`harness.config` and :mod:`harness.known_issues`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from harness.errors import ConfigError


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
