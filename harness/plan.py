"""Expand targets x suites into cells, and take a deterministic shard of them."""

from __future__ import annotations

import dataclasses
import re

from harness.config import SuiteConfig, TargetConfig
from harness.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    total: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise ConfigError(f'--shard "{text}" is not K/N (for example --shard 1/3).')
        k, n = int(m.group(1)), int(m.group(2))
        if n < 1 or not 1 <= k <= n:
            raise ConfigError(f'--shard "{text}": K must be between 1 and N (for example --shard 2/3).')
        return cls(k, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


@dataclasses.dataclass(frozen=True)
class PlannedCell:
    target: TargetConfig
    suite: SuiteConfig

    @property
    def key(self) -> tuple[str, str]:
        return (self.target.name, self.suite.name)


@dataclasses.dataclass
class Plan:
    cells: list[PlannedCell]
    shard: Shard | None = None

    def targets(self) -> list[TargetConfig]:
        seen: dict[str, TargetConfig] = {}
        for c in self.cells:
            seen.setdefault(c.target.name, c.target)
        return list(seen.values())

    def cells_for(self, target: str) -> list[PlannedCell]:
        return [c for c in self.cells if c.target.name == target]

    def packages_for(self, target: TargetConfig) -> list[str]:
        """Union of what the target's suites need, in the target image's distro names."""
        distro = target.image.distro if target.image else "debian"
        pkgs: set[str] = set()
        for c in self.cells_for(target.name):
            pkgs.update(c.suite.packages_for(distro))
        return sorted(pkgs)

    def ports_for(self, target: str) -> list[int]:
        """TCP ports the target's suites serve on inside it (a docker target publishes them)."""
        return sorted({p for c in self.cells_for(target) for p in c.suite.ports})

    def key_packages_for(self, target: str) -> list[str]:
        out: list[str] = []
        for c in self.cells_for(target):
            out.extend(p for p in c.suite.key_packages if p not in out)
        return out


def make_plan(targets: list[TargetConfig], suites: list[SuiteConfig], shard: Shard | None = None) -> Plan:
    """Every (target, suite), in the order given; a shard takes every N-th cell.

    Cells are dealt round-robin over the sorted (target, suite) names, so a
    shard's content depends only on the matrix, never on timing.
    """
    cells = [PlannedCell(t, s) for t in targets for s in suites]
    if shard is None:
        return Plan(cells)
    ordered = sorted(cells, key=lambda c: c.key)
    chosen = {c.key for i, c in enumerate(ordered) if i % shard.total == shard.index - 1}
    return Plan([c for c in cells if c.key in chosen], shard)


def baseline_first(plan: Plan) -> Plan:
    """The plan with the baseline's cells first (the first native target), the rest in order.

    ``case_timeout = "auto"`` scales each case's timeout from its baseline
    duration, so the baseline's cell of a suite must finish before any other
    target runs that suite.  A plan without a native target is returned as it is.
    """
    baseline = next((c.target.name for c in plan.cells if c.target.kind == "native"), None)
    if baseline is None:
        return plan
    first = [c for c in plan.cells if c.target.name == baseline]
    return Plan(first + [c for c in plan.cells if c.target.name != baseline], plan.shard)
