"""The SQLite history of runs, and comparing two recorded runs (with :mod:`harness.compare`).

Default database: :func:`harness.paths.default_db` (``$LEAPFROG_DB``, else
``<user data dir>/leapfrog/history.sqlite``; ``--db PATH`` to choose).  Every ``leapfrog run`` records
its run, targets with facts, cells, cases and numeric metrics; ``leapfrog
history`` lists runs and ``leapfrog compare A B`` prints what changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from harness.compare import lower_is_better, regressions
from harness.errors import ConfigError
from harness.model import Run, Status
from harness.paths import default_db
from harness.records import DEFAULT_RULES, CaseKey, Comparison, Rules, RunSummary, Snapshot, Spread

__all__ = ["Rules", "Snapshot", "Spread", "lower_is_better", "regressions"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, host TEXT,
    leapfrog_version TEXT, argv TEXT, baseline TEXT, report TEXT
);
CREATE TABLE IF NOT EXISTS targets (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name TEXT NOT NULL, kind TEXT, arch TEXT, facts TEXT, error TEXT,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    target TEXT NOT NULL, suite TEXT NOT NULL, verdict TEXT, wall REAL, message TEXT, attempts INTEGER,
    PRIMARY KEY (run_id, target, suite)
);
CREATE TABLE IF NOT EXISTS cases (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    target TEXT NOT NULL, suite TEXT NOT NULL, name TEXT NOT NULL,
    status TEXT NOT NULL, duration REAL, message TEXT, known_issue TEXT, flaky INTEGER,
    PRIMARY KEY (run_id, target, suite, name)
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    target TEXT NOT NULL, suite TEXT NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL,
    num REAL, text TEXT,
    PRIMARY KEY (run_id, target, suite, name, key)
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
"""

#: A case (or a latency metric) this many times slower than before is a change (see ``Rules``).
DEFAULT_THRESHOLD = DEFAULT_RULES.threshold
MESSAGE_KEEP = 2000


@contextlib.contextmanager
def connect(path: Path | None = None) -> Iterator[sqlite3.Connection]:
    path = path or default_db()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=30)
    except sqlite3.Error as e:
        raise ConfigError(f"{path}: cannot open the history database ({e}); pass --db PATH.") from e
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(SCHEMA)
        yield conn
        conn.commit()
    except sqlite3.DatabaseError as e:
        raise ConfigError(f"{path}: not a leapfrog history database ({e}); pass another --db PATH.") from e
    finally:
        conn.close()


def record(run: Run, *, db: Path | None = None, report: Path | None = None) -> None:
    """Store a run (replacing an earlier record of the same run id)."""
    with connect(db) as conn:
        conn.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
        conn.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.run_id,
                run.started,
                run.finished,
                run.host,
                run.leapfrog_version,
                json.dumps(run.argv),
                run.baseline,
                str(report) if report else "",
            ),
        )
        conn.executemany(
            "INSERT INTO targets VALUES (?, ?, ?, ?, ?, ?)",
            [
                (run.run_id, t.name, t.kind, t.arch, json.dumps(t.facts.to_dict()) if t.facts else None, t.error)
                for t in run.targets
            ],
        )
        conn.executemany(
            "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run.run_id, c.target, c.suite, c.verdict.value, c.wall, c.message, c.attempts) for c in run.cells],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    run.run_id,
                    c.target,
                    c.suite,
                    k.name,
                    k.status.value,
                    k.duration,
                    k.message[:MESSAGE_KEEP],
                    k.known_issue,
                    int(k.flaky),
                )
                for c in run.cells
                for k in c.cases
            ),
        )
        conn.executemany(
            "INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (
                    run.run_id,
                    c.target,
                    c.suite,
                    k.name,
                    key,
                    float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None,
                    None if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v),
                )
                for c in run.cells
                for k in c.cases
                for key, v in k.metrics.items()
            ),
        )


def summaries(*, db: Path | None = None, limit: int = 50) -> list[RunSummary]:
    """The newest ``limit`` runs, oldest first, with pass counts and durations per target."""
    with connect(db) as conn:
        runs = conn.execute("SELECT run_id, started FROM runs ORDER BY started DESC LIMIT ?", (limit,)).fetchall()
        out = []
        for run_id, started in reversed(runs):
            per: dict[str, tuple[int, int, float]] = {}
            for target, passed, total, secs in conn.execute(
                "SELECT target, SUM(status = 'passed'), COUNT(*), SUM(duration) FROM cases "
                "WHERE run_id = ? GROUP BY target",
                (run_id,),
            ):
                per[target] = (int(passed or 0), int(total or 0), float(secs or 0.0))
            out.append(RunSummary(run_id=run_id, started=started, per_target=per))
        return out


def summary_of(run: Run) -> RunSummary:
    """What :func:`summaries` would say of ``run`` once recorded, computed without the database."""
    per: dict[str, tuple[int, int, float]] = {}
    for c in run.cells:
        for k in c.cases:
            passed, total, secs = per.get(c.target, (0, 0, 0.0))
            per[c.target] = (passed + (k.status is Status.PASSED), total + 1, secs + k.duration)
    return RunSummary(run_id=run.run_id, started=run.started, per_target=per)


def before_recording(
    run: Run, *, db: Path | None = None, limit: int = 50
) -> tuple[Comparison | None, list[RunSummary]]:
    """The comparison with the previous comparable run, and the trend rows with ``run`` last,
    read before ``run`` is recorded: the report never waits on (or is lost to) writing the history."""
    comparison = None
    base = previous_comparable(run, db=db)
    if base:
        with connect(db) as conn:
            before = snapshot(conn, base)
            seen = spread(conn, run.run_id, run.started, {(c.target, c.suite) for c in run.cells})
        comparison = diff(before, load_cases_from_run(run), base_id=base, new_id=run.run_id, spread=seen)
    rows = [r for r in summaries(db=db, limit=limit) if r.run_id != run.run_id] + [summary_of(run)]
    rows.sort(key=lambda r: r.started)
    return comparison, rows[-limit:]


def run_ids(*, db: Path | None = None) -> list[str]:
    with connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started")]


def _cases(conn: sqlite3.Connection, run_id: str) -> dict[CaseKey, tuple[str, float, str]]:
    rows = conn.execute(
        "SELECT target, suite, name, status, duration, known_issue FROM cases WHERE run_id = ?", (run_id,)
    )
    return {(t, s, n): (st, d or 0.0, k or "") for t, s, n, st, d, k in rows}


def _metrics(conn: sqlite3.Connection, run_id: str) -> dict[tuple[str, str, str, str], float]:
    rows = conn.execute(
        "SELECT target, suite, name, key, num FROM metrics WHERE run_id = ? AND num IS NOT NULL", (run_id,)
    )
    return {(t, s, n, k): v for t, s, n, k, v in rows}


def _verdicts(conn: sqlite3.Connection, run_id: str) -> dict[tuple[str, str], str]:
    rows = conn.execute("SELECT target, suite, verdict FROM cells WHERE run_id = ?", (run_id,))
    return {(t, s): v or "" for t, s, v in rows}


def snapshot(conn: sqlite3.Connection, run_id: str) -> Snapshot:
    """What comparing needs of a recorded run: its cases, numeric metrics and cell verdicts."""
    return Snapshot(_cases(conn, run_id), _metrics(conn, run_id), _verdicts(conn, run_id))


def spread(
    conn: sqlite3.Connection, run_id: str, started: str, cells: set[tuple[str, str]], last: int = DEFAULT_RULES.history
) -> Spread:
    """Durations of passed cases and numeric metrics in the ``last`` runs of each (target, suite) cell
    recorded before ``started`` (never ``run_id`` itself; cells that did not run are skipped)."""
    durations: dict[CaseKey, dict[str, float]] = {}
    metrics: dict[tuple[str, str, str, str], dict[str, float]] = {}
    for target, suite in sorted(cells):
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT c.run_id FROM cells c JOIN runs r ON r.run_id = c.run_id WHERE c.target = ? AND c.suite = ? "
                "AND r.started <= ? AND r.run_id != ? AND c.verdict NOT IN ('infra-error', 'not-run') "
                "ORDER BY r.started DESC LIMIT ?",
                (target, suite, started, run_id, max(last, 0)),
            )
        ]
        marks = ",".join("?" * len(ids))
        for rid, name, duration in conn.execute(
            f"SELECT run_id, name, duration FROM cases WHERE target = ? AND suite = ? AND status = 'passed' "  # noqa: S608 - placeholders only
            f"AND run_id IN ({marks})",
            (target, suite, *ids),
        ):
            durations.setdefault((target, suite, name), {})[rid] = float(duration or 0.0)
        for rid, name, key, num in conn.execute(
            f"SELECT run_id, name, key, num FROM metrics WHERE target = ? AND suite = ? AND num IS NOT NULL "  # noqa: S608 - placeholders only
            f"AND run_id IN ({marks})",
            (target, suite, *ids),
        ):
            metrics.setdefault((target, suite, name, key), {})[rid] = float(num)
    return Spread(durations, metrics)


def load_cases_from_run(run: Run) -> Snapshot:
    cases = {}
    metrics = {}
    for c in run.cells:
        for k in c.cases:
            cases[(c.target, c.suite, k.name)] = (k.status.value, k.duration, k.known_issue)
            for key, v in k.metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    metrics[(c.target, c.suite, k.name, key)] = float(v)
    return Snapshot(cases, metrics, {(c.target, c.suite): c.verdict.value for c in run.cells})


def diff(
    base: tuple[dict[CaseKey, tuple[str, float, str]], dict[tuple[str, str, str, str], float]] | Snapshot,
    new: tuple[dict[CaseKey, tuple[str, float, str]], dict[tuple[str, str, str, str], float]] | Snapshot,
    *,
    base_id: str,
    new_id: str,
    threshold: float | None = None,
    rules: Rules = DEFAULT_RULES,
    spread: Spread | None = None,
) -> Comparison:
    """What changed from ``base`` to ``new`` (see :func:`harness.compare.diff`)."""
    from harness import compare

    if threshold is not None:
        rules = dataclasses.replace(rules, threshold=threshold)
    return compare.diff(Snapshot(*base), Snapshot(*new), base_id=base_id, new_id=new_id, rules=rules, spread=spread)


def compare_ids(
    base_id: str, new_id: str, *, db: Path | None = None, threshold: float | None = None, rules: Rules = DEFAULT_RULES
) -> Comparison:
    with connect(db) as conn:
        known = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
        for rid in (base_id, new_id):
            if rid not in known:
                from harness.tomlread import suggest

                raise ConfigError(f'no run "{rid}" in the history{suggest(rid, known)}; see `leapfrog history`.')
        base, new = snapshot(conn, base_id), snapshot(conn, new_id)
        row = conn.execute("SELECT started FROM runs WHERE run_id = ?", (new_id,)).fetchone()
        seen = spread(conn, new_id, row[0], set(new.verdicts), rules.history)
    return diff(base, new, base_id=base_id, new_id=new_id, threshold=threshold, rules=rules, spread=seen)


def previous_comparable(run: Run, *, db: Path | None = None) -> str | None:
    """The newest earlier run that shares at least one (target, suite) cell with ``run``."""
    cells = {(c.target, c.suite) for c in run.cells}
    with connect(db) as conn:
        rows = conn.execute(
            "SELECT run_id FROM runs WHERE started <= ? AND run_id != ? ORDER BY started DESC LIMIT 50",
            (run.started, run.run_id),
        ).fetchall()
        for (rid,) in rows:
            theirs = set(conn.execute("SELECT target, suite FROM cells WHERE run_id = ?", (rid,)).fetchall())
            if cells & {(t, s) for t, s in theirs}:
                return str(rid)
    return None
