from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_project
from harness.errors import ConfigError
from harness.plan import Shard, make_plan


def test_shard_parse() -> None:
    assert Shard.parse("2/3") == Shard(2, 3)
    for bad in ("0/3", "4/3", "a/b", "3", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            Shard.parse(bad)


def test_shards_partition_the_matrix(project_root: Path) -> None:
    p = load_project(project_root)
    targets = list(p.targets.values())
    suites = list(p.suites.values())
    full = {c.key for c in make_plan(targets, suites).cells}
    seen: list[tuple[str, str]] = []
    for k in (1, 2, 3):
        keys = [c.key for c in make_plan(targets, suites, Shard(k, 3)).cells]
        assert keys == [c.key for c in make_plan(targets, suites, Shard(k, 3)).cells]  # deterministic
        seen.extend(keys)
    assert sorted(seen) == sorted(full)
    assert len(seen) == len(set(seen))


def test_packages_union_per_distro(project_root: Path) -> None:
    p = load_project(project_root)
    t = p.targets["debian-trixie-riscv64"]
    plan = make_plan([t], list(p.suites.values()))
    want = set()
    for s in p.suites.values():
        want.update(s.packages.debian)
    assert set(plan.packages_for(t)) == want
