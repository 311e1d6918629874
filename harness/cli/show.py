"""What the terminal shows: progress lines, the run summary, changes between runs, warnings.

Text from a target goes through :func:`printable` first: its escape sequences
are shown, never obeyed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text

from harness.cli._common import console, out

if TYPE_CHECKING:
    from harness.model import Run
    from harness.records import Comparison

#: Changes within the noise listed in the terminal before the rest is only counted (--show-noise: all).
NOISE_SHOWN = 10

_CONTROL = {i: f"\\x{i:02x}" for i in (*range(0x00, 0x20), 0x7F) if i not in (0x09,)}


def printable(text: str) -> str:
    """Text from a target made safe for a terminal: control characters (escape sequences) shown, not obeyed."""
    return text.translate(_CONTROL)


def note(message: str) -> None:
    """One plain line on stderr (no markup: a path or a name may hold brackets)."""
    console.print(message, markup=False, highlight=False)


def warn(message: str) -> None:
    """``warning: <message>`` on stderr, the word in yellow."""
    console.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)


class Progress:
    """One line per event on stderr: plain text that also reads well in CI logs."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.counts: dict[tuple[str, str], int] = {}

    def event(self, kind: str, data: dict[str, Any]) -> None:
        t = f"[{time.monotonic() - self.start:6.1f}s]"
        if kind == "progress":
            console.print(f"{t} {data['target']}: {data['message']}", markup=False, highlight=False)
        elif kind == "target-start":
            console.print(f"{t} {data['target']}: starting", markup=False)
        elif kind == "cell-start":
            extra = f" (attempt {data['attempt']})" if data["attempt"] > 1 else ""
            console.print(f"{t} {data['target']} / {data['suite']}: running{extra}", markup=False)
        elif kind == "case":
            key = (data["target"], data["suite"])
            self.counts[key] = self.counts.get(key, 0) + 1
            case = data["case"]
            if case.status.is_bad:
                console.print(
                    f"{t} {data['target']} / {data['suite']}: {case.status.value.upper()} {printable(case.name)}",
                    markup=False,
                    highlight=False,
                )
        elif kind == "cell-end":
            c = data["cell"]
            n = c.counts()
            console.print(
                f"{t} {c.target} / {c.suite}: {c.verdict.value} ({n['passed']}/{len(c.cases)} passed, "
                f"{c.wall:.1f}s){' - ' + c.message if c.message else ''}",
                markup=False,
                highlight=False,
            )


def summary(run: Run, wall: float) -> None:
    """The table printed at the end of a run: one row per cell, then the triage counts and the wall time."""
    from harness.compare import cell_slowdown
    from harness.model import Status
    from harness.triage import counts_text, triage_counts

    out.print(f"\n{'target':32} {'suite':14} {'verdict':13} {'passed':>9} {'bad':>4} {'wall':>8} {'slowdown':>9}")
    for c in run.cells:
        n = c.counts()
        bad = sum(n[s.value] for s in Status if s.is_bad)
        r = cell_slowdown(run, c)
        out.print(
            f"{c.target:32} {c.suite:14} {c.verdict.value:13} {n['passed']:>4}/{len(c.cases):<4} {bad:>4} "
            f"{c.wall:>7.1f}s {(f'x{r:.2f}') if r else '':>9}",
            markup=False,
            highlight=False,
        )
    triaged = counts_text(triage_counts(run))
    if triaged:
        out.print(f"triage: {triaged}", markup=False, highlight=False)
    out.print(f"total wall time {wall:.1f}s")


def changes(comparison: Comparison, *, show_noise: bool = False) -> None:
    """Every change, worst first; a timing change says which test decided it ("+19 ms < 50 ms floor").

    Changes within the noise are listed up to ``NOISE_SHOWN`` (a suite of upstream
    tests has hundreds), then counted; ``show_noise`` lists them all.
    """
    if not comparison.changes:
        out.print(f"no changes since {comparison.base_run_id}")
        return
    out.print(f"\nchanges since {comparison.base_run_id}:")
    order = ["new-failure", "verdict-worse", "slower", "fixed", "verdict-better", "verdict", "faster"]
    order += ["new", "gone", "noise"]
    ordered = sorted(comparison.changes, key=lambda c: order.index(c.kind) if c.kind in order else 99)
    noise = [c for c in ordered if c.kind == "noise"]
    if not show_noise and len(noise) > NOISE_SHOWN:
        hidden = noise[NOISE_SHOWN:]
        ordered = [c for c in ordered if c not in hidden]
        noise_note = f"  … and {len(hidden)} more within the noise (--show-noise lists them)"
    else:
        noise_note = ""
    for change in ordered:
        ratio = f" (x{change.ratio:.2f})" if change.ratio else ""
        where = f"{change.target} / {change.suite}" + (f" / {printable(change.case)}" if change.case else "")
        why = f"  [{printable(change.reason)}]" if change.reason and change.case else ""
        out.print(
            f"  {change.kind:14} {where}: {change.before or '-'} -> {change.after or '-'}{ratio}{why}",
            markup=False,
            highlight=False,
        )
    if noise_note:
        out.print(noise_note, markup=False, highlight=False)
