"""A target made ready for a run's suites: given the run's settings, started, provisioned, asked for its facts.

The runner starts every target through :func:`ready` (and ``leapfrog repro``
through :meth:`harness.runner.Runner.start_target`), so what an image's
distribution needs after start (openEuler installs the suites' packages with
dnf) is known here and nowhere above.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from harness.config import TargetConfig
from harness.model import TargetFacts
from harness.plan import Plan, PlannedCell
from harness.targets import Target


@dataclasses.dataclass
class Ready:
    """A started target's facts, and the suite packages its distribution lacks."""

    #: None when the probe reports them with the first in-target suite (``Target.facts_from_probe``).
    facts: TargetFacts | None
    missing: list[str]


def ready(target: Target, cfg: TargetConfig, plan: Plan, *, out: Path, say: Callable[[str], None]) -> Ready:
    """Start ``target`` (made from ``cfg``) for the cells ``plan`` has for it; artifacts go under ``out``.

    Raises what ``start()``, provisioning or ``facts()`` raise; the caller stops the target then.
    """
    target.key_packages = plan.key_packages_for(cfg.name)
    target.requested_ports = plan.ports_for(cfg.name)
    target.artifacts_dir = out / "artifacts" / cfg.name
    target.start()
    missing = provision(target, cfg, plan.packages_for(cfg), say)
    in_target = any(c.suite.kind == "in-target" for c in plan.cells_for(cfg.name))
    facts = None if (target.facts_from_probe and in_target) else target.facts()
    return Ready(facts, missing)


def provision(target: Target, cfg: TargetConfig, packages: list[str], say: Callable[[str], None]) -> list[str]:
    """Install in the started ``target`` what its image lacks of ``packages``; return those it could not get.

    Only an openEuler image needs it (its suites' packages come from dnf at start).  An
    openEuler image leapfrog built with dnf already holds what its repository has: the
    rest was recorded when it was built.
    """
    if cfg.image is None or cfg.image.distro != "openeuler":
        return []
    if cfg.image.source == "build":
        from harness.images.dnf_rootfs import missing_packages

        return missing_packages(cfg.image, packages)
    from harness.images.openeuler import provision as dnf_install

    say("installing suite packages with dnf")
    return dnf_install(target, packages).missing


def lacking(cell: PlannedCell, missing: list[str]) -> list[str]:
    """The packages of ``cell``'s suite, in its target's distribution, that are among ``missing``."""
    distro = cell.target.image.distro if cell.target.image else "debian"
    return sorted(set(missing) & set(cell.suite.packages_for(distro)))
