"""The run report's dependency tables: one per ``--project`` of the run (``Run.projects``).

Each is the table ``leapfrog deps`` prints (the same ``deps_section`` macro,
the same cell texts from :mod:`harness.deps`), with a target's columns as the
run resolved them: its own requirements and those of every wheel it took.
A row per requirement (by distribution name, in the order first met); a target
that never met one shows "—".  The tables come from results.json, so every
text is cleaned here and escaped by the template.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from harness.model import Run
from harness.model_deps import ProjectDeps, clean_deps_column
from harness.report.view import clean, slug

if TYPE_CHECKING:
    from harness.deps import Resolution

#: Sources ``harness.deps`` writes; an offer from any other is not shown.
SOURCES = ("installed", "debian", "openeuler", "pypi-wheel", "pypi-sdist")
_TEXT = 1000


@dataclasses.dataclass
class DepsSection:
    """What ``deps_section(report, rows, anchor)`` prints for one project."""

    anchor: str
    suite: str
    report: dict[str, Any]
    rows: list[tuple[str, list[tuple[str, str, str]]]]


def _resolution(target: str, r: dict[str, Any]) -> Resolution:
    from harness import deps

    offers = tuple(
        deps.Offer(o["source"], o["package"], o["version"], o["fits"], note=o["note"])
        for o in r["offers"]
        if o["source"] in SOURCES
    )
    return deps.Resolution(target, r["requirement"], r["name"], offers, needed=r["choice"] != "not-needed")


def build_text(build: dict[str, Any]) -> str:
    """A ``--build-in-target`` build in a few words: "built in the target in 41.2 s" or why not."""
    if build["wheel"] and not build["error"]:
        return f"built in the target in {build['seconds'] or 0:.1f} s ({build['wheel']})"
    if build["seconds"] is None:
        return "not built" + (f": {build['error']}" if build["error"] else "")
    return f"build failed after {build['seconds']:.1f} s"


def section(project: ProjectDeps) -> DepsSection:
    """One project's table, every text cleaned (control characters made visible, bounded)."""
    from harness import deps

    columns = [clean_deps_column(c) for c in project.targets]  # a Run made in code is not read back cleaned
    order: dict[str, str] = {}  # name -> requirement as first met
    found: list[dict[str, tuple[str, str, str]]] = []
    for col in columns:
        cells: dict[str, tuple[str, str, str]] = {}
        built = {b["name"]: b for b in col["builds"]}
        for r in col["requirements"]:
            name = r["name"] or r["requirement"]
            order.setdefault(name, r["requirement"])
            res = _resolution(col["target"], r)
            text = deps.cell_text(res) + (f", {build_text(built[name])}" if name in built else "")
            cells[name] = (res.choice, clean(text, _TEXT), clean(deps.others_text(res), _TEXT))
        found.append(cells)
    rows = [(clean(req, _TEXT), [c.get(name, ("absent", "—", "")) for c in found]) for name, req in order.items()]
    targets = []
    for col in columns:
        index = col["index"]
        targets.append(
            {
                **{k: clean(col[k], _TEXT) for k in ("target", "distro", "release", "arch", "python")},
                "index": {k: clean(v, _TEXT) for k, v in index.items()} if index else None,
                "index_error": clean(col["index_error"], 4000),
                "not_run": clean(col["not_run"], 4000),
                "builds": [clean(f"{b['source']}: {build_text(b)}", _TEXT) for b in col["builds"]],
            }
        )
    title = f"{project.suite} {project.version}".strip() + (f" ({project.source})" if project.source else "")
    return DepsSection(
        anchor=slug("deps", project.suite),
        suite=clean(project.suite, 200),
        report={"source": clean(title, 2000), "targets": targets},
        rows=rows,
    )


def sections(run: Run) -> list[DepsSection]:
    """A table per project of the run, in the run's order; none for a run without ``--project``."""
    return [section(p) for p in run.projects]
