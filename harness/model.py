"""Plain dataclasses for everything that crosses module lines.

``results.json`` is ``Run.to_dict()``; JUnit XML and HTML are rendered from a
``Run`` read back with ``Run.from_dict``.  The schema is documented in
``docs/results-schema.md``; bump ``SCHEMA_VERSION`` when it changes.  A
``--project``'s dependency table is in :mod:`harness.model_deps`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

from harness.model_deps import MAX_DEPS_ITEMS, ProjectDeps

SCHEMA_VERSION = 1

Metric = int | float | str | bool

#: Numbers from a target are kept only when finite and at most this magnitude
#: (the whole int64 and uint64 range, so INT64_MIN and UINT64_MAX are kept):
#: sums, ratios, charts and the SQLite history then stay finite.
MAX_MAGNITUDE = float(1 << 64)
#: A case duration above this (about 31 years) is not a real measurement.
MAX_DURATION = 1e9
#: Bounds on facts a target reports about itself (it is untrusted).
MAX_FACT_TEXT = 2000
MAX_FACT_ITEMS = 500


def finite(value: object, limit: float = MAX_MAGNITUDE) -> int | float | None:
    """``value`` when it is a finite int or float of magnitude at most ``limit``, else None.

    Booleans are not numbers here.  An int too large for a float (``1`` and 400
    zeros) is refused without converting it, so it never raises OverflowError.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int):
        return value if -limit <= value <= limit else None
    return value if math.isfinite(value) and -limit <= value <= limit else None


def clean_duration(value: object) -> float | None:
    """A duration in seconds from untrusted input: finite, 0 to ``MAX_DURATION``, else None.

    Numeric strings ("1.5") are accepted, as ``float()`` always did.
    """
    if isinstance(value, str):
        try:
            value = float(value.strip()[:100])
        except ValueError:
            return None
    number = finite(value, MAX_DURATION + 1)
    if number is None or number > MAX_DURATION:
        return None
    return max(0.0, float(number))


def _timings(value: object) -> list[float] | None:
    """``retimed`` from results.json: a list of durations (the bad ones dropped, at most 64), else None."""
    if not isinstance(value, list):
        return None
    kept = [d for v in value[:64] if (d := clean_duration(v)) is not None]
    return kept or None


def clean_metric(value: object) -> Metric | None:
    """A metric value: booleans and strings as they are, numbers only when :func:`finite`."""
    if isinstance(value, (bool, str)):
        return value
    return finite(value)


def _fact_text(value: object) -> str | None:
    """One fact as text: strings and finite numbers; lists, dicts, null and NaN are dropped."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif finite(value, math.inf) is not None:
        text = str(value)
    else:
        return None
    return text[:MAX_FACT_TEXT]


class Status(enum.StrEnum):
    """Outcome of one case."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"

    @property
    def is_good(self) -> bool:
        """Counts toward *compatible*: passed, skipped with a reason, expected failure."""
        return self in (Status.PASSED, Status.SKIPPED, Status.XFAILED)

    @property
    def is_bad(self) -> bool:
        return not self.is_good


class Verdict(enum.StrEnum):
    """Outcome of one (target, suite) cell."""

    COMPATIBLE = "compatible"
    PARTIAL = "partial"
    INCOMPATIBLE = "incompatible"
    INFRA_ERROR = "infra-error"
    NOT_RUN = "not-run"


@dataclasses.dataclass
class CaseResult:
    """One test inside a suite, as the probe reported it."""

    name: str  # pytest node id relative to the suite folder
    status: Status
    duration: float  # seconds, call phase plus setup and teardown
    message: str = ""  # failure, error or skip reason (bounded)
    output: str = ""  # captured stdout/stderr/log (bounded)
    metrics: dict[str, Metric] = dataclasses.field(default_factory=dict)
    #: Set when a failure matches the known-issues file: "reason <link>".
    known_issue: str = ""
    #: True when the case failed first and passed on a re-run.
    flaky: bool = False
    #: ``{"class": ..., "evidence": {...}}`` set by :mod:`harness.triage`; None when not triaged.
    triage: dict[str, Any] | None = None
    #: The timeout the case ran under when it was computed (``case_timeout = "auto"``,
    #: :mod:`harness.autotimeout`): seconds, the baseline duration, slowdown and a note.
    timeout: dict[str, Any] | None = None
    #: ``--retime-slow``: every passed timing, the first run's first; ``duration`` is then the fastest
    #: (:mod:`harness.retime`).  None when the case was not re-timed.
    retimed: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        # By hand, not dataclasses.asdict: this runs once per case (200,000 in a big merge).
        out: dict[str, Any] = {
            "name": self.name,
            "status": self.status.value,
            "duration": self.duration,
            "message": self.message,
            "output": self.output,
            "metrics": dict(self.metrics),
            "known_issue": self.known_issue,
            "flaky": self.flaky,
        }
        if self.triage is not None:
            out["triage"] = self.triage
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.retimed is not None:
            out["retimed"] = self.retimed
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseResult:
        metrics: dict[str, Metric] = {}
        for key, value in dict(d.get("metrics", {})).items():
            kept = clean_metric(value)
            if kept is not None:
                metrics[str(key)] = kept
        return cls(
            name=str(d["name"]),
            status=Status(d["status"]),
            duration=clean_duration(d.get("duration", 0.0)) or 0.0,
            message=str(d.get("message", "")),
            output=str(d.get("output", "")),
            metrics=metrics,
            known_issue=str(d.get("known_issue", "")),
            flaky=bool(d.get("flaky", False)),
            # Recomputed from the run whenever a report is rendered (harness.triage).
            triage=d["triage"] if isinstance(d.get("triage"), dict) else None,
            timeout=d["timeout"] if isinstance(d.get("timeout"), dict) else None,
            retimed=_timings(d.get("retimed")),
        )


@dataclasses.dataclass
class TargetFacts:
    """What a target is, as measured from inside it."""

    arch: str = ""  # platform.machine(): x86_64, riscv64
    isa: str = ""  # rv64imafdcv..., or the x86-64 level flags summary
    extensions: list[str] = dataclasses.field(default_factory=list)
    cpu_model: str = ""  # the QEMU CPU model asked for, if any
    os_id: str = ""
    os_name: str = ""  # PRETTY_NAME of os-release
    os_version: str = ""
    kernel: str = ""
    libc: str = ""
    python: str = ""
    emulation: str = ""  # native, qemu-user, qemu-system, board
    packages: dict[str, str] = dataclasses.field(default_factory=dict)
    extra: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: object) -> TargetFacts:
        """Facts as a target or a results.json holds them, coerced field by field.

        They come from the target, so nothing is trusted: a text field keeps a
        string or finite number (as text), ``extensions`` a list of those,
        ``packages`` and ``extra`` a table of those; anything else is dropped.
        """
        facts = cls()
        if not isinstance(d, dict):
            return facts
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            value = d[f.name]
            if f.name == "extensions":
                items = value[:MAX_FACT_ITEMS] if isinstance(value, list) else []
                facts.extensions = [t for t in map(_fact_text, items) if t is not None]
            elif f.name in ("packages", "extra"):
                table: dict[str, str] = {}
                if isinstance(value, dict):
                    for key, item in list(value.items())[:MAX_FACT_ITEMS]:
                        text = _fact_text(item)
                        if text is not None:
                            table[str(key)[:200]] = text
                setattr(facts, f.name, table)
            else:
                text = _fact_text(value)
                if text is not None:
                    setattr(facts, f.name, text)
        return facts


@dataclasses.dataclass
class CellResult:
    """One (target, suite) pair of a run."""

    target: str
    suite: str
    verdict: Verdict
    cases: list[CaseResult] = dataclasses.field(default_factory=list)
    wall: float = 0.0  # seconds, host side, including copy in and out
    message: str = ""  # why infra-error / not-run
    attempts: int = 1
    log: str = ""  # bounded tail of the pytest process output
    workers: int = 1  # pytest processes the cell's cases were split over (--workers)
    #: What was asked (--workers, else suite.toml's workers, else 1): a count or "auto"; None: as it ran.
    workers_asked: int | str | None = None
    workers_note: str = ""  # why the cell ran serially though more were asked for

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for c in self.cases:
            out[c.status.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "suite": self.suite,
            "verdict": self.verdict.value,
            "wall": self.wall,
            "message": self.message,
            "attempts": self.attempts,
            "log": self.log,
            "workers": self.workers,
            "workers_asked": self.workers if self.workers_asked is None else self.workers_asked,
            "workers_note": self.workers_note,
            "counts": self.counts(),
            "cases": [c.to_dict() for c in self.cases],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CellResult:
        return cls(
            target=str(d["target"]),
            suite=str(d["suite"]),
            verdict=Verdict(d["verdict"]),
            cases=[CaseResult.from_dict(c) for c in d.get("cases", [])],
            wall=clean_duration(d.get("wall", 0.0)) or 0.0,
            message=str(d.get("message", "")),
            attempts=int(d.get("attempts", 1)),
            log=str(d.get("log", "")),
            workers=int(d.get("workers", 1)),
            workers_asked=_asked(d.get("workers_asked")),
            workers_note=str(d.get("workers_note", "")),
        )


def _asked(value: object) -> int | str | None:
    """``workers_asked`` from results.json: "auto" or a count; None when absent (older files) or neither."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    return None


def verdict_for(cases: list[CaseResult]) -> Verdict:
    """All good: compatible; some passed: partial; none passed: incompatible.

    A flaky case (failed, then passed on a re-run) keeps a cell from being compatible.
    """
    if not cases:
        return Verdict.INCOMPATIBLE
    good = sum(1 for c in cases if c.status.is_good and not c.flaky)
    if good == len(cases):
        return Verdict.COMPATIBLE
    passed = sum(1 for c in cases if c.status is Status.PASSED)
    return Verdict.PARTIAL if passed else Verdict.INCOMPATIBLE


@dataclasses.dataclass
class TargetInfo:
    """A target as it took part in a run."""

    name: str
    kind: str
    description: str = ""
    arch: str = ""  # declared architecture (facts.arch is the measured one)
    facts: TargetFacts | None = None
    error: str = ""  # why it could not start, if it could not
    #: The image the started target ran, as the host saw it (``Target.image_id``):
    #: a cached image's name for chroot, the Docker image reference; "" when none.
    #: ``leapfrog repro`` starts the same one.
    image: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "arch": self.arch,
            "facts": self.facts.to_dict() if self.facts else None,
            "error": self.error,
            "image": self.image,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetInfo:
        facts = d.get("facts")
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            description=str(d.get("description", "")),
            arch=str(d.get("arch", "")),
            facts=TargetFacts.from_dict(facts) if facts else None,
            error=str(d.get("error", "")),
            image=str(d.get("image", ""))[:1000],
        )


@dataclasses.dataclass
class Run:
    """Targets x suites executed once."""

    run_id: str
    started: str  # ISO 8601, UTC
    finished: str = ""
    leapfrog_version: str = ""
    host: str = ""
    argv: list[str] = dataclasses.field(default_factory=list)
    baseline: str = "native"  # the target slowdowns are measured against
    targets: list[TargetInfo] = dataclasses.field(default_factory=list)
    cells: list[CellResult] = dataclasses.field(default_factory=list)
    #: The ``--project`` folders of the run and their dependency tables (none: the key is left out).
    projects: list[ProjectDeps] = dataclasses.field(default_factory=list)

    def cell(self, target: str, suite: str) -> CellResult | None:
        for c in self.cells:
            if c.target == target and c.suite == suite:
                return c
        return None

    def case_count(self) -> int:
        return sum(len(c.cases) for c in self.cells)

    def target(self, name: str) -> TargetInfo | None:
        for t in self.targets:
            if t.name == name:
                return t
        return None

    @property
    def suites(self) -> list[str]:
        seen: list[str] = []
        for c in self.cells:
            if c.suite not in seen:
                seen.append(c.suite)
        return seen

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "started": self.started,
            "finished": self.finished,
            "leapfrog_version": self.leapfrog_version,
            "host": self.host,
            "argv": self.argv,
            "baseline": self.baseline,
            "targets": [t.to_dict() for t in self.targets],
            "cells": [c.to_dict() for c in self.cells],
        }
        if self.projects:
            out["projects"] = [p.to_dict() for p in self.projects]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        projects = d.get("projects")
        return cls(
            run_id=str(d["run_id"]),
            started=str(d["started"]),
            finished=str(d.get("finished", "")),
            leapfrog_version=str(d.get("leapfrog_version", "")),
            host=str(d.get("host", "")),
            argv=list(d.get("argv", [])),
            baseline=str(d.get("baseline", "native")),
            targets=[TargetInfo.from_dict(t) for t in d.get("targets", [])],
            cells=[CellResult.from_dict(c) for c in d.get("cells", [])],
            projects=[
                p
                for p in map(ProjectDeps.from_dict, projects[:MAX_DEPS_ITEMS] if isinstance(projects, list) else [])
                if p is not None
            ],
        )
