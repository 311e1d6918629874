"""Re-time the cases that ran slower than their own history: a stalled host is not a regression.

On a shared machine loaded past its cores, starting a process (``subprocess``,
``multiprocessing`` spawn, a pool) can stall for 50-800 ms.  One stall turns a
0.5 s case into a 1.5 s one, and `leapfrog compare` of two runs of the same
commit reports it "slower" (its floor and ratio are cleared; two runs give no
history spread yet).  One timing cannot tell a stall from a regression; timing
the case again can: a real slowdown is slow in every round, a stall does not
come back on cue.

With ``leapfrog run --retime-slow N`` a *suspect* is a passed case whose
duration is at least ``threshold`` times its fastest duration in the last
``history`` recorded runs of the same target and suite, and at least
``min_change`` seconds more (the defaults of `leapfrog compare`,
:data:`harness.records.DEFAULT_RULES`).  Right after its cell's passes, in the
same target, the suspects run again N times (one pytest process per round,
all of the cell's suspects together).  A suspect keeps the result of its
fastest passed round (its duration, and the metrics measured with it) and
``retimed`` lists every passed timing, the first run's first.  A round where it did not pass adds no timing and changes
no status.  Without history there are no suspects: the first run of a cell is
never re-timed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Final

from harness.model import CaseResult, Status
from harness.records import DEFAULT_RULES, Rules

#: Suspects re-timed per cell at most (the slowest first); the rest keep their one timing.
MAX_SUSPECTS: Final = 50

#: Runs one round: the node ids to run and the round's index -> what the round recorded, and a problem.
Round = Callable[[list[str], int], tuple[dict[str, CaseResult], str]]


def fastest_earlier(
    db: Path, pairs: Iterable[tuple[str, str]], last: int = DEFAULT_RULES.history
) -> dict[tuple[str, str], dict[str, float]]:
    """For each (target, suite): each passed case's fastest duration over the ``last`` runs of that cell.

    Read-only: a database that does not exist is no history (it is not
    created).  Cells that ended ``infra-error`` or ``not-run`` do not count.
    Raises ``sqlite3.Error`` for a file that is not a history database.
    """
    wanted = sorted(set(pairs))
    if not wanted or last < 1 or not db.is_file():
        return {}
    out: dict[tuple[str, str], dict[str, float]] = {}
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        for target, suite in wanted:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT c.run_id FROM cells c JOIN runs r ON r.run_id = c.run_id "
                    "WHERE c.target = ? AND c.suite = ? AND c.verdict NOT IN ('infra-error', 'not-run') "
                    "ORDER BY r.started DESC LIMIT ?",
                    (target, suite, last),
                )
            ]
            if not ids:
                continue
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT name, MIN(duration) FROM cases WHERE target = ? AND suite = ? AND status = 'passed' "  # noqa: S608 (placeholders only)
                f"AND duration > 0 AND run_id IN ({marks}) GROUP BY name",
                (target, suite, *ids),
            ).fetchall()
            out[(target, suite)] = {str(name): float(d) for name, d in rows}
    finally:
        conn.close()
    return out


def for_cells(
    pairs: Iterable[tuple[str, str]], db: Path | None, warn: Callable[[str], None]
) -> dict[tuple[str, str], dict[str, float]]:
    """:func:`fastest_earlier` of ``db`` (the default history when None); one that cannot be read is a warning."""
    from harness import paths

    path = db or paths.default_db()
    try:
        return fastest_earlier(path, pairs)
    except (sqlite3.Error, OSError) as e:
        warn(f"--retime-slow re-times nothing: the history {path} cannot be read ({e}); pass --db PATH.")
        return {}


def suspects(cases: Mapping[str, CaseResult], earlier: Mapping[str, float], rules: Rules = DEFAULT_RULES) -> list[str]:
    """The passed cases slower than their fastest earlier duration by the ratio *and* the floor, slowest first.

    Child cases (``<case>::<child>`` recorded by a case) are no pytest nodes and are never suspects.
    """
    found: list[tuple[float, str]] = []
    for c in cases.values():
        before = earlier.get(c.name)
        if c.status is not Status.PASSED or c.flaky or before is None or before <= 0:
            continue
        if c.duration >= rules.threshold * before and c.duration - before >= rules.min_change:
            found.append((c.duration - before, c.name))
    return [n for _, n in sorted(found, reverse=True) if not _is_child(n, cases)][:MAX_SUSPECTS]


def retime(done: MutableMapping[str, CaseResult], earlier: Mapping[str, float], rounds: int, run_round: Round) -> str:
    """Re-time the suspects of ``done`` (a cell's cases, replaced in place) ``rounds`` times; return a problem.

    ``run_round`` runs the node ids given and returns the cases it recorded and
    any problem reading them back; a problem ends the re-timing (the timings
    gathered so far are kept) and is returned for the cell to report.  Each
    suspect keeps the result of its fastest passed round, metrics and output
    with it (a timing metric measured in a stalled round is as stalled as the
    case), with ``retimed`` set.
    """
    names = suspects(done, earlier)
    if not names or rounds < 1:
        return ""
    seen: dict[str, list[CaseResult]] = {n: [done[n]] for n in names}
    problem = ""
    for r in range(rounds):
        again, problem = run_round(names, r)
        for n in names:
            c = again.get(n)
            if c is not None and c.status is Status.PASSED and c.duration > 0:
                seen[n].append(c)
        if problem:
            break
    for n, results in seen.items():
        if len(results) > 1:
            fastest = min(results, key=lambda c: c.duration)
            fastest.retimed = [c.duration for c in results]
            done[n] = fastest
    return problem


def _is_child(name: str, names: Mapping[str, object]) -> bool:
    parts = name.split("::")
    return any("::".join(parts[:i]) in names for i in range(2, len(parts)))
