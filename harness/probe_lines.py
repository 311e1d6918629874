"""Reading the probe's JSON lines: what a target sends back is untrusted, so every line,
size and count is bounded and every text cleaned.

Pure functions of text, used by :mod:`harness.cell` while pytest runs and after it,
and by ``leapfrog repro`` to read the one case it ran.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any

from harness.model import CaseResult, Status, TargetFacts, clean_duration, clean_metric

#: What the probe's watchdog prints before it ends a process stuck past the case timeout.
TIMEOUT_MARK = "leapfrog-case-timeout"

#: Bounds on what a target may send back (it is untrusted).
MAX_RESULT_LINE = 1 << 20
MAX_MESSAGE = 16384
MAX_CASE_OUTPUT = 65536
MAX_LOG = 16384
MAX_METRICS = 200
#: Bytes of one results file read per pytest pass.  Past it the cell keeps the
#: cases read so far and becomes infra-error (the rest is never loaded).
MAX_RESULTS_BYTES = 64 << 20
#: Cases kept per cell; past it, likewise.
MAX_CASES = 100_000
#: Notes about dropped values kept per pass (the rest are left out).
MAX_NOTES = 20


def clean_text(value: object) -> str:
    """Text from a target: lone surrogates and undecodable bytes become U+FFFD."""
    return str(value).encode("utf-8", "replace").decode("utf-8", "replace")


def bound(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, with a note of how many were dropped."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... truncated by leapfrog: {len(text) - limit} characters dropped ...]"


def tail(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text`` (where a log's cause usually is)."""
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


@dataclasses.dataclass
class ProbeOutput:
    cases: list[CaseResult]
    started: list[str]  # started, never finished (the case that was running when it died)
    collected: list[str]
    ended: bool  # the session reached its end
    facts: dict[str, Any] | None = None  # what the target is, when asked for (LEAPFROG_FACTS)
    #: Values dropped because they were not finite numbers (bounded, for the cell's message).
    notes: list[str] = dataclasses.field(default_factory=list)
    #: Cases left out because the output held more than ``max_cases``.
    dropped_cases: int = 0
    #: One worker of several (LEAPFROG_WORKER): each collected case's position in the whole collection.
    positions: dict[str, int] = dataclasses.field(default_factory=dict)
    #: One worker of several: the whole collection as "<cases>:<digest of their names>" (alike in every worker).
    whole: str = ""


def _describe(value: object) -> str:
    """A short, safe description of a rejected number (a 4,000-digit int is not printed)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"an integer of {len(str(abs(value)))} digits"
    return repr(value)[:40]


def parse_probe_lines(lines: Iterable[str], max_cases: int | None = None) -> ProbeOutput:
    """Read the probe's JSON lines defensively: bad lines are skipped, sizes and counts bounded.

    Numbers are kept only when finite (``harness.model.finite``); a duration or
    metric that is not is dropped and named in ``notes``.  Cases past
    ``max_cases`` are counted in ``dropped_cases``, not kept.
    """
    max_cases = MAX_CASES if max_cases is None else max_cases
    cases: dict[str, CaseResult] = {}
    started: list[str] = []
    collected: list[str] = []
    ended = False
    facts: dict[str, Any] | None = None
    notes: list[str] = []
    dropped = 0
    positions: dict[str, int] = {}
    whole = ""

    def note(text: str) -> None:
        if len(notes) < MAX_NOTES:
            notes.append(text)

    for raw in lines:
        if len(raw) > MAX_RESULT_LINE:
            continue
        try:
            rec = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the parser goes
            continue
        if not isinstance(rec, dict):
            continue
        event = rec.get("event")
        name = clean_text(rec.get("name", ""))[:1000]
        if event == "start" and name:
            if len(started) < max_cases:
                started.append(name)
        elif event == "collected" and isinstance(rec.get("names"), list):
            collected = [clean_text(n)[:1000] for n in rec["names"][:max_cases]]
            places = rec.get("positions")
            if isinstance(places, list):
                positions = {n: p for n, p in zip(collected, places, strict=False) if type(p) is int and p >= 0}
                whole = clean_text(f"{rec.get('total')}:{rec.get('digest')}")[:100]
        elif event == "case" and name:
            if name not in cases and len(cases) >= max_cases:
                dropped += 1
                continue
            try:
                status = Status(str(rec.get("status")))
            except ValueError:
                status = Status.ERROR
            metrics_in = rec.get("metrics")
            metrics: dict[str, int | float | str | bool] = {}
            if isinstance(metrics_in, dict):
                for k, v in itertools.islice(metrics_in.items(), MAX_METRICS):
                    key = clean_text(k)[:200]
                    if isinstance(v, (bool, int, float)):
                        kept = clean_metric(v)
                        if kept is None:
                            note(f'case "{name[:200]}": metric "{key}" dropped: {_describe(v)} is not a finite number.')
                            continue
                        metrics[key] = kept
                    else:
                        metrics[key] = clean_text(v)[:1000]
            duration = clean_duration(rec.get("duration", 0.0))
            if duration is None:
                note(
                    f'case "{name[:200]}": duration {_describe(rec.get("duration"))} dropped: '
                    f"not a finite number of seconds."
                )
                duration = 0.0
            cases[name] = CaseResult(
                name=name,
                status=status,
                duration=duration,
                message=bound(clean_text(rec.get("message", "")), MAX_MESSAGE),
                output=bound(clean_text(rec.get("output", "")), MAX_CASE_OUTPUT),
                metrics=metrics,
            )
        elif event == "end":
            ended = True
        elif event == "facts" and isinstance(rec.get("facts"), dict):
            facts = _clean_facts(rec["facts"])
    # The case that was running when the process died: the first one collected
    # (in this pass) that has no result.
    unfinished = [n for n in started if n not in cases]
    if not unfinished:
        unfinished = [n for n in collected if n not in cases][:1]
    return ProbeOutput(list(cases.values()), unfinished, collected, ended, facts, notes, dropped, positions, whole)


def _clean_facts(raw: dict[str, Any]) -> dict[str, Any]:
    """Facts from a target are untrusted too: each field coerced to its type and bounded
    (``TargetFacts.from_dict``), then every text cleaned of lone surrogates."""
    out: dict[str, Any] = {}
    for key, value in TargetFacts.from_dict(raw).to_dict().items():
        if isinstance(value, str):
            out[key] = clean_text(value)
        elif isinstance(value, list):
            out[key] = [clean_text(v) for v in value]
        else:
            out[key] = {clean_text(k): clean_text(v) for k, v in value.items()}
    return out


def lines_of(data: bytes) -> Iterator[str]:
    """Lines of a results file, decoded one at a time (no second copy of a 64 MiB file)."""
    for raw in io.BytesIO(data):
        yield raw.decode("utf-8", "replace").rstrip("\r\n")


def size_text(n: int) -> str:
    """``n`` bytes for a message: "64 MiB" when whole mebibytes, else "4,000 bytes"."""
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n:,} bytes"
