"""The report's targets: what each one is (its facts), its colour in charts, and its totals over its cells."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from harness.compare import geometric_mean
from harness.model import Run, TargetInfo, Verdict
from harness.report.cells import CellView
from harness.report.text import clean, ratio, seconds

#: Colours of targets in charts and legends (Tableau 10, readable on white).
PALETTE: Final = [
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
]


def target_colors(run: Run) -> dict[str, str]:
    return {t.name: PALETTE[i % len(PALETTE)] for i, t in enumerate(run.targets)}


@dataclasses.dataclass
class TargetView:
    info: TargetInfo
    name: str
    description: str
    error: str
    emulation: str
    color: str
    arch: str
    passed: int
    total: int
    wall: str
    slowdown: str
    verdicts: dict[str, int]
    facts: list[tuple[str, str]]
    extensions: list[str]
    packages: list[tuple[str, str]]
    extra: list[tuple[str, str]]


#: Facts of ``extra`` shown in a target's main table (what the AI stack does with vectors,
#: :func:`harness.probe.facts.vector_facts`), with their labels; the rest of ``extra`` is under "more facts".
VECTOR_FACTS: Final = (
    ("numpy_blas", "BLAS numpy was built with"),
    ("blas_runtime", "BLAS at run time"),
    ("blas_library", "BLAS library loaded"),
    ("numpy_simd", "numpy SIMD"),
    ("threadpoolctl", "threadpoolctl"),
    ("vector_facts_error", "vector facts"),
)
_VECTOR_KEYS: Final = frozenset(k for k, _ in VECTOR_FACTS)


def _facts(t: TargetInfo) -> tuple[list[tuple[str, str]], list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    f = t.facts
    if f is None:
        rows = [("kind", t.kind), ("arch (declared)", t.arch)]
        return [(k, clean(v, 500)) for k, v in rows if v], [], [], []
    os_text = f.os_name or " ".join(x for x in (f.os_id, f.os_version) if x)
    rows = [
        ("kind", t.kind),
        ("emulation", f.emulation),
        ("arch", f.arch),
        ("ISA", f.isa),
        ("QEMU CPU model", f.cpu_model),
        ("OS", os_text),
        ("kernel", f.kernel),
        ("libc", f.libc),
        ("Python", f.python),
        *((label, f.extra.get(key, "")) for key, label in VECTOR_FACTS),
    ]
    facts = [(k, clean(str(v), 500)) for k, v in rows if v]
    extensions = [clean(str(e), 100) for e in f.extensions]
    packages = [(clean(str(k), 200), clean(str(v), 200)) for k, v in sorted(f.packages.items())]
    extra = [(clean(str(k), 200), clean(str(v), 500)) for k, v in sorted(f.extra.items()) if k not in _VECTOR_KEYS]
    return facts, extensions, packages, extra


def verdict_counts(verdicts: Iterable[str]) -> dict[str, int]:
    """Cells per verdict, every verdict present (in :class:`Verdict` order)."""
    out = {v.value: 0 for v in Verdict}
    for v in verdicts:
        out[v] += 1
    return out


def target_views(
    run: Run, names: Sequence[str], cells: Sequence[CellView], cell_ratios: Mapping[tuple[str, str], float]
) -> list[TargetView]:
    """A view per target in ``names`` (a target the run did not list is shown as kind "?")."""
    colors = target_colors(run)
    targets: list[TargetView] = []
    for name in names:
        info = run.target(name) or TargetInfo(name=name, kind="?")
        mine = [cv for cv in cells if cv.cell.target == name]
        facts, extensions, packages, extra = _facts(info)
        targets.append(
            TargetView(
                info=info,
                name=clean(name, 200),
                description=clean(info.description, 1000),
                error=clean(info.error, 4000),
                emulation=clean(info.facts.emulation if info.facts else "", 100),
                color=colors.get(name, PALETTE[len(targets) % len(PALETTE)]),
                arch=clean((info.facts.arch if info.facts else "") or info.arch, 100),
                passed=sum(cv.passed for cv in mine),
                total=sum(cv.cases for cv in mine),
                wall=seconds(sum(cv.cell.wall for cv in mine)),
                slowdown=ratio(geometric_mean([r for (t, _), r in cell_ratios.items() if t == name])),
                verdicts=verdict_counts(cv.verdict for cv in mine),
                facts=facts,
                extensions=extensions,
                packages=packages,
                extra=extra,
            )
        )
    return targets
