"""The report of ``leapfrog deps``: one column per target, as a terminal table, JSON or HTML."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from packaging.requirements import Requirement

from harness.deps.indexes import IndexInfo
from harness.deps.live import LiveSources
from harness.deps.platforms import Platform, platform_for
from harness.deps.resolver import Resolution, resolve
from harness.deps.versions import debian_upstream


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
        columns.append(TargetDeps(platform, res, live.index_info(platform), live.errors.get(platform.target, "")))
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
    from harness.htmlenv import env as report_env

    return report_env()


def render_html(report: DepsReport, *, standalone: bool = True) -> str:
    """The deps section (``standalone=False``: the section alone, for another page to include), escaped."""
    template = _env().get_template("deps.html.j2")
    rows = [(req, [(r.choice, cell_text(r), others_text(r)) for r in cells]) for req, cells in report.rows()]
    return str(template.render(report=report.to_dict(), rows=rows, standalone=standalone))
