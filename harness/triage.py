"""Triage: for every case that did not pass on a target, say whether it is the target's, and why.

A pure function of a :class:`~harness.model.Run`: the run's own baseline (the
native target) is the reference.  Each case of a target other than the
baseline that ended badly (failed, error, timeout, crashed, xpassed) gets
``case.triage = {"class": ..., "evidence": {...}}``; the first class that
applies wins:

``infra``             the cell is ``infra-error``: the target broke, not the software.
``everywhere``        the baseline also ended the same case badly: not the target's problem.
``slow``              a timeout on the target where the baseline passed.
``emulator-suspect``  the case failed under qemu-user but passed on a qemu-system VM
                      or a board of the same image in the run; or its failure matches
                      a known emulation limit (SIGILL / "Illegal instruction" under
                      qemu-user or qemu-system, ENOSYS under qemu-user, whose
                      syscalls are emulated).
``target-only``       the baseline passed the same case.
``unknown``           no baseline result to compare with (no baseline in the run,
                      no such case there, or the baseline skipped it).

The other way round: a case that passed on a target but ended badly on the
baseline is ``baseline-only``.  That triage is recorded on the *target's* case
(the one that passed), since the baseline's own case has nothing to be
compared with; the baseline's cases never get a triage.

Expected failures and skips (``xfailed``, ``skipped``) keep their status and
get no triage.

The evidence always holds ``baseline`` (its name), ``baseline_status`` and
``baseline_duration`` (null without a baseline result), ``first_difference``
(the first line where the two messages differ: ``{"line", "target",
"baseline"}``, or null when they are equal) and ``packages`` (the key package
versions that differ between the two targets: ``{name: {"target",
"baseline"}}``).  Per class it adds:

- ``infra``: ``cell_message``, the first line of why the cell is infra-error;
- ``slow``: ``slowdown`` (the cell's, or the target's when the cell has no
  case passed on both), ``slowdown_of`` ("cell" or "target"),
  ``estimated_duration`` (baseline duration × slowdown) and ``timeout_enough``
  (that × :data:`ENOUGH_MARGIN`, rounded up, at least :data:`ENOUGH_FLOOR`);
- ``emulator-suspect``: ``signal`` or ``errno`` (and ``syscall`` when the
  message names it) with ``matched``, the line that matched; or ``passed_on``
  and ``passed_on_emulation``, the VM or board where the case passed;
- ``unknown``: ``reason``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable
from typing import Any, Final

from harness.compare import cell_slowdown, target_slowdown
from harness.errors import ConfigError
from harness.model import CaseResult, CellResult, Run, Status, TargetInfo, Verdict

INFRA: Final = "infra"
EVERYWHERE: Final = "everywhere"
SLOW: Final = "slow"
EMULATOR: Final = "emulator-suspect"
TARGET_ONLY: Final = "target-only"
UNKNOWN: Final = "unknown"
BASELINE_ONLY: Final = "baseline-only"

#: Every class, in the order of precedence (``baseline-only`` applies to passed cases only).
CLASSES: Final = (INFRA, EVERYWHERE, SLOW, EMULATOR, TARGET_ONLY, UNKNOWN, BASELINE_ONLY)
#: What ``leapfrog run --fail-on`` counts by default: what the port broke.
DEFAULT_FAIL_ON: Final = frozenset(CLASSES) - {EVERYWHERE, INFRA}
#: One line per class, for the report.
MEANINGS: Final = {
    INFRA: "the target broke, not the software",
    EVERYWHERE: "the baseline failed it too: not the target's problem",
    SLOW: "timed out on the target, passed on the baseline",
    EMULATOR: "a known emulation limit, or passed on a VM or board of the same image",
    TARGET_ONLY: "the baseline passed it: the target's problem",
    UNKNOWN: "no baseline result to compare with",
    BASELINE_ONLY: "failed on the baseline, passed on the target",
}

#: "The timeout that would have been enough" is the estimated duration times this.
ENOUGH_MARGIN: Final = 1.5
#: ... and never less than this many seconds.
ENOUGH_FLOOR: Final = 1.0
#: Characters of a differing line kept in the evidence.
MAX_LINE: Final = 300
#: Characters of a case's message and output searched for known emulation limits.
MAX_SEARCH: Final = 200_000

_BAD: Final = frozenset(s for s in Status if s.is_bad)
_SIGILL = re.compile(r"\bSIGILL\b|Illegal instruction")
# errno 38 is ENOSYS on x86-64 and on riscv64 (asm-generic), the two sides compared here.
_ENOSYS = re.compile(r"\bENOSYS\b|\[Errno 38\]|Function not implemented")
_SYSCALL = re.compile(r"Function not implemented: '(?P<name>[A-Za-z0-9_.-]{1,64})'|\b(?P<known>riscv_hwprobe)\b")

Key = tuple[str, str, str]  # (target, suite, case name)


def parse_classes(text: str) -> frozenset[str]:
    """``--fail-on`` value: a comma list of classes (``all`` for every one; empty for none)."""
    names = [x.strip() for x in text.split(",") if x.strip()]
    if names == ["all"]:
        return frozenset(CLASSES)
    unknown = [n for n in names if n not in CLASSES]
    if unknown:
        raise ConfigError(
            f'--fail-on "{text}": no triage class {", ".join(repr(n) for n in unknown)}; '
            f"use a comma list of: {', '.join(CLASSES)} (or all)."
        )
    return frozenset(names)


def triage_run(run: Run) -> dict[Key, dict[str, Any]]:
    """The triage of every case that gets one, by (target, suite, case name)."""
    out: dict[Key, dict[str, Any]] = {}
    baseline = run.target(run.baseline) if run.baseline else None
    passed_elsewhere = _passes_by_case(run)
    for cell in run.cells:
        if cell.target == run.baseline:
            continue
        base_cell = run.cell(run.baseline, cell.suite) if run.baseline else None
        base_cases = {c.name: c for c in base_cell.cases} if base_cell else {}
        info = run.target(cell.target)
        context = _CellContext(run, cell, info, baseline, passed_elsewhere)
        for case in cell.cases:
            b = base_cases.get(case.name)
            klass: str | None = None
            extra: dict[str, Any] = {}
            if case.status in _BAD:
                klass, extra = context.classify(case, b)
            elif case.status is Status.PASSED and b is not None and b.status in _BAD:
                klass = BASELINE_ONLY
            if klass is None:
                continue
            evidence: dict[str, Any] = {
                "baseline": run.baseline,
                "baseline_status": b.status.value if b else None,
                "baseline_duration": b.duration if b else None,
                "first_difference": first_difference(case.message, b.message if b else ""),
                "packages": context.packages,
                **extra,
            }
            out[(cell.target, cell.suite, case.name)] = {"class": klass, "evidence": evidence}
    return out


def apply_triage(run: Run) -> bool:
    """Set ``case.triage`` on every case of ``run`` (None where there is none); True when anything changed."""
    found = triage_run(run)
    changed = False
    for cell in run.cells:
        for case in cell.cases:
            new = found.get((cell.target, cell.suite, case.name))
            if case.triage != new:
                case.triage = new
                changed = True
    return changed


def triage_counts(run: Run) -> dict[str, int]:
    """Cases per class as set on the run (every class, zeros included, in :data:`CLASSES` order)."""
    counts = dict.fromkeys(CLASSES, 0)
    for cell in run.cells:
        for case in cell.cases:
            if case.triage is not None and case.triage.get("class") in counts:
                counts[case.triage["class"]] += 1
    return counts


def failing(run: Run, fail_on: Collection[str] = DEFAULT_FAIL_ON) -> bool:
    """True when a case gives exit code 1 under ``--fail-on``.  Triages ``run`` first.

    - a triaged case counts when its class is in ``fail_on`` and no known issue
      explains it (for ``baseline-only``: the baseline's case has no known issue);
    - a bad or flaky case without a triage counts as before triage existed
      (no known issue), except a baseline case that a target's triage already
      judged (``everywhere``, ``baseline-only``);
    - a flaky case always counts (flaky is not a triage class).
    """
    apply_triage(run)
    judged: set[tuple[str, str]] = set()  # (suite, case) of the baseline a target's triage covers
    for cell in run.cells:
        for case in cell.cases:
            if case.triage is not None and case.triage.get("class") in (EVERYWHERE, BASELINE_ONLY):
                judged.add((cell.suite, case.name))
    base_known = {
        (cell.suite, case.name)
        for cell in run.cells
        if cell.target == run.baseline
        for case in cell.cases
        if case.known_issue
    }
    for cell in run.cells:
        for case in cell.cases:
            if case.flaky and not case.known_issue:
                return True
            t = case.triage
            if t is not None:
                klass = t.get("class")
                explained = (cell.suite, case.name) in base_known if klass == BASELINE_ONLY else bool(case.known_issue)
                if klass in fail_on and not explained:
                    return True
            elif case.status in _BAD and not case.known_issue:
                if cell.target == run.baseline and (cell.suite, case.name) in judged:
                    continue
                return True
    return False


def first_difference(target: str, baseline: str) -> dict[str, Any] | None:
    """The first line (1-based) where two messages differ, each side bounded; None when equal."""
    if target == baseline:
        return None
    ours, theirs = target.splitlines(), baseline.splitlines()
    for i in range(max(len(ours), len(theirs))):
        a = ours[i].rstrip() if i < len(ours) else ""
        b = theirs[i].rstrip() if i < len(theirs) else ""
        if a != b:
            return {"line": i + 1, "target": a[:MAX_LINE], "baseline": b[:MAX_LINE]}
    return None  # differ only in trailing blanks


def package_differences(target: TargetInfo | None, baseline: TargetInfo | None) -> dict[str, dict[str, str]]:
    """Key package versions that differ between two targets ("" = not installed or not reported)."""
    if target is None or baseline is None or target.facts is None or baseline.facts is None:
        return {}
    ours, theirs = target.facts.packages, baseline.facts.packages
    return {
        name: {"target": ours.get(name, ""), "baseline": theirs.get(name, "")}
        for name in sorted(set(ours) | set(theirs))
        if ours.get(name, "") != theirs.get(name, "")
    }


def emulation_limit(case: CaseResult, emulation: str) -> dict[str, str] | None:
    """Evidence when the failure matches a known emulation limit of ``emulation``, else None.

    SIGILL and "Illegal instruction" count under qemu-user and qemu-system (both
    decode instructions in software); ENOSYS only under qemu-user, where qemu,
    not a kernel, answers system calls (qemu-user 7.2 has no ``riscv_hwprobe``).
    """
    if emulation not in ("qemu-user", "qemu-system"):
        return None
    text = f"{case.message[:MAX_SEARCH]}\n{case.output[:MAX_SEARCH]}"
    m = _SIGILL.search(text)
    if m:
        return {"signal": "SIGILL", "matched": _line_at(text, m.start())}
    if emulation != "qemu-user":
        return None
    m = _ENOSYS.search(text)
    if m is None:
        return None
    evidence = {"errno": "ENOSYS", "matched": _line_at(text, m.start())}
    call = _SYSCALL.search(text)
    if call:
        evidence["syscall"] = call["name"] or call["known"]
    return evidence


def _line_at(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start : end if end >= 0 else len(text)].strip()[:MAX_LINE]


def _passes_by_case(run: Run) -> dict[tuple[str, str], list[str]]:
    """(suite, case) -> targets where it passed."""
    out: dict[tuple[str, str], list[str]] = {}
    for cell in run.cells:
        for case in cell.cases:
            if case.status is Status.PASSED:
                out.setdefault((cell.suite, case.name), []).append(cell.target)
    return out


def _same_image(a: TargetInfo, b: TargetInfo) -> bool:
    """As far as the facts tell: same arch, OS id and version, Python and key package versions."""
    fa, fb = a.facts, b.facts
    if fa is None or fb is None:
        return False
    return (fa.arch, fa.os_id, fa.os_version, fa.python, fa.packages) == (
        fb.arch,
        fb.os_id,
        fb.os_version,
        fb.python,
        fb.packages,
    )


class _CellContext:
    """What every case of one cell is compared with."""

    def __init__(
        self,
        run: Run,
        cell: CellResult,
        info: TargetInfo | None,
        baseline: TargetInfo | None,
        passed_elsewhere: dict[tuple[str, str], list[str]],
    ) -> None:
        self.run = run
        self.cell = cell
        self.info = info
        self.emulation = info.facts.emulation if info and info.facts else ""
        self.packages = package_differences(info, baseline)
        self.passed_elsewhere = passed_elsewhere
        self._slowdown: tuple[float | None, str] | None = None

    def slowdown(self) -> tuple[float | None, str]:
        if self._slowdown is None:
            r = cell_slowdown(self.run, self.cell)
            self._slowdown = (r, "cell") if r is not None else (target_slowdown(self.run, self.cell.target), "target")
        return self._slowdown

    def classify(self, case: CaseResult, b: CaseResult | None) -> tuple[str, dict[str, Any]]:
        if self.cell.verdict is Verdict.INFRA_ERROR:
            lines = self.cell.message.strip().splitlines()
            return INFRA, {"cell_message": lines[0][:MAX_LINE] if lines else ""}
        if b is not None and b.status in _BAD:
            return EVERYWHERE, {}
        if case.status is Status.TIMEOUT and b is not None and b.status is Status.PASSED:
            return SLOW, self._slow(b)
        suspect = self._emulator(case)
        if suspect is not None:
            return EMULATOR, suspect
        if b is not None and b.status is Status.PASSED:
            return TARGET_ONLY, {}
        if not self.run.baseline:
            reason = "the run has no baseline"
        elif b is None:
            reason = f"{self.run.baseline} has no result for this case"
        else:
            reason = f"{self.run.baseline} did not run it to a verdict ({b.status.value})"
        return UNKNOWN, {"reason": reason}

    def _slow(self, b: CaseResult) -> dict[str, Any]:
        r, of = self.slowdown()
        if r is None:
            return {"slowdown": None, "slowdown_of": None, "estimated_duration": None, "timeout_enough": None}
        estimate = b.duration * r
        enough = max(ENOUGH_FLOOR, float(math.ceil(estimate * ENOUGH_MARGIN)))
        return {
            "slowdown": round(r, 3),
            "slowdown_of": of,
            "estimated_duration": round(estimate, 3),
            "timeout_enough": enough,
        }

    def _emulator(self, case: CaseResult) -> dict[str, Any] | None:
        if self.emulation == "qemu-user" and self.info is not None:
            for name in self.passed_elsewhere.get((self.cell.suite, case.name), ()):
                other = self.run.target(name)
                if other is None or other.facts is None or other.facts.emulation not in ("qemu-system", "board"):
                    continue
                if _same_image(self.info, other):
                    return {"passed_on": name, "passed_on_emulation": other.facts.emulation}
        limit = emulation_limit(case, self.emulation)
        return dict(limit) if limit is not None else None


def counts_text(counts: dict[str, int], classes: Iterable[str] = CLASSES) -> str:
    """``"2 target-only · 1 slow"``: the classes with cases, in order; "" when none."""
    return " · ".join(f"{counts[k]} {k}" for k in classes if counts.get(k))
