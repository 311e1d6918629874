"""A ``--project``'s dependency table as ``results.json`` holds it (:class:`ProjectDeps`), cleaned on reading.

Part of the run's model (:class:`harness.model.Run` has a list of them); kept
apart because reading one back checks every key of text that came from PyPI
and distribution indexes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

#: Bounds on a project's dependency table read back from results.json: characters
#: of one text, and items of one list (targets, requirements, offers).
MAX_DEPS_TEXT = 1000
MAX_DEPS_ITEMS = 500
#: Where a requirement came from (``harness.deps.CHOICES``); anything else reads back as "none".
DEPS_CHOICES = ("not-needed", "installed", "distro", "wheel", "sdist", "none")
_OFFER_TEXT = ("source", "package", "version", "url", "sha256", "note")
_COLUMN_TEXT = ("target", "distro", "release", "arch", "python", "index_error", "not_run")
_BUILD_TEXT = ("name", "requirement", "source", "wheel", "error")


def _deps_text(value: object) -> str:
    return value[:MAX_DEPS_TEXT] if isinstance(value, str) else ""


def _deps_list(value: object) -> list[dict[str, Any]]:
    return [v for v in value[:MAX_DEPS_ITEMS] if isinstance(v, dict)] if isinstance(value, list) else []


def _seconds(value: object) -> float | None:
    """A build's duration: a finite number of seconds, not negative, else None (it did not run)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def clean_deps_column(d: object) -> dict[str, Any]:
    """One target's column of a project's dependency table, every key checked (the text came from
    PyPI and distribution indexes, and the file from disk): known keys only, text bounded, lists capped.
    """
    col = d if isinstance(d, dict) else {}
    out: dict[str, Any] = {k: _deps_text(col.get(k)) for k in _COLUMN_TEXT}
    tags = col.get("wheel_tags")
    out["wheel_tags"] = [_deps_text(t) for t in tags[:4] if isinstance(t, str)] if isinstance(tags, list) else []
    index = col.get("index")
    keys = ("url", "date", "fetched", "verified")
    out["index"] = {k: _deps_text(index.get(k)) for k in keys} if isinstance(index, dict) else None
    reqs = []
    for r in _deps_list(col.get("requirements")):
        offers = [
            {**{k: _deps_text(o.get(k)) for k in _OFFER_TEXT}, "fits": o.get("fits") is True}
            for o in _deps_list(r.get("offers"))
        ]
        choice = r.get("choice")
        reqs.append(
            {
                "requirement": _deps_text(r.get("requirement")),
                "name": _deps_text(r.get("name")),
                "choice": choice if choice in DEPS_CHOICES else "none",
                "offers": offers,
            }
        )
    out["requirements"] = reqs
    out["builds"] = [
        {**{k: _deps_text(b.get(k)) for k in _BUILD_TEXT}, "seconds": _seconds(b.get("seconds"))}
        for b in _deps_list(col.get("builds"))
    ]
    return out


@dataclasses.dataclass
class ProjectDeps:
    """A ``--project`` of the run: where each of its requirements came from on each target.

    Written by :mod:`harness.project` when the run is planned; the HTML report
    shows it as the project's dependency table.  A column has the shape of a
    target in ``leapfrog deps --json`` plus ``not_run`` (see ``docs/results-schema.md``).
    """

    suite: str  # "project:<name>", the suite its cells have
    version: str = ""
    source: str = ""  # the folder or sdist given to --project
    targets: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "version": self.version, "source": self.source, "targets": self.targets}

    @classmethod
    def from_dict(cls, d: object) -> ProjectDeps | None:
        """The project as results.json holds it, cleaned; None when it has no suite name."""
        if not isinstance(d, dict) or not isinstance(d.get("suite"), str) or not d["suite"]:
            return None
        return cls(
            suite=_deps_text(d["suite"]),
            version=_deps_text(d.get("version")),
            source=_deps_text(d.get("source")),
            targets=[clean_deps_column(t) for t in _deps_list(d.get("targets"))],
        )
