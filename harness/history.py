"""The SQLite history of runs, and comparing two runs.

Default database: ``<user data dir>/leapfrog/history.sqlite``
(``$LEAPFROG_DB`` or ``--db PATH`` to choose).  Every ``leapfrog run`` records
its run, targets with facts, cells, cases and numeric metrics; ``leapfrog
history`` lists runs and ``leapfrog compare A B`` prints what changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import platformdirs

from harness.errors import ConfigError
from harness.model import Run, Status
from harness.report.types import CaseChange, Comparison, RunSummary

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

#: A case (or a latency metric) this many times slower than before is a regression.
DEFAULT_THRESHOLD = 1.5
#: Cases shorter than this (seconds) are too noisy to call slower.
MIN_DURATION = 0.05
MESSAGE_KEEP = 2000


def default_db() -> Path:
    env = os.environ.get("LEAPFROG_DB")
    return Path(env) if env else Path(platformdirs.user_data_dir("leapfrog")) / "history.sqlite"


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
            before = (_cases(conn, base), _metrics(conn, base))
        comparison = diff(before, load_cases_from_run(run), base_id=base, new_id=run.run_id)
    rows = [r for r in summaries(db=db, limit=limit) if r.run_id != run.run_id] + [summary_of(run)]
    rows.sort(key=lambda r: r.started)
    return comparison, rows[-limit:]


def run_ids(*, db: Path | None = None) -> list[str]:
    with connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started")]


CaseKey = tuple[str, str, str]


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


def load_cases_from_run(
    run: Run,
) -> tuple[dict[CaseKey, tuple[str, float, str]], dict[tuple[str, str, str, str], float]]:
    cases = {}
    metrics = {}
    for c in run.cells:
        for k in c.cases:
            cases[(c.target, c.suite, k.name)] = (k.status.value, k.duration, k.known_issue)
            for key, v in k.metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    metrics[(c.target, c.suite, k.name, key)] = float(v)
    return cases, metrics


def _bad(status: str) -> bool:
    return Status(status).is_bad


def lower_is_better(key: str) -> bool | None:
    """Latency-like metrics get worse going up, throughput-like going down; others are not judged."""
    k = key.lower()
    # Rates first: "tcp_echo_mb_per_s" ends in "_s" too, and more of it is better.
    if k.endswith(("qps", "_per_s", "_per_sec", "throughput", "_ips")) or k in ("ips", "fps"):
        return False
    if k.endswith(("_ms", "_us", "_s", "_seconds", "latency")) or k in ("ms", "seconds"):
        return True
    return None


def diff(
    base: tuple[dict[CaseKey, tuple[str, float, str]], dict[tuple[str, str, str, str], float]],
    new: tuple[dict[CaseKey, tuple[str, float, str]], dict[tuple[str, str, str, str], float]],
    *,
    base_id: str,
    new_id: str,
    threshold: float = DEFAULT_THRESHOLD,
) -> Comparison:
    """What changed from ``base`` to ``new``: failures, fixes, slower and faster cases and metrics."""
    b_cases, b_metrics = base
    n_cases, n_metrics = new
    changes: list[CaseChange] = []
    cells_in_both = {(t, s) for t, s, _ in b_cases} & {(t, s) for t, s, _ in n_cases}
    for key in sorted(set(b_cases) | set(n_cases)):
        t, s, name = key
        if (t, s) not in cells_in_both:
            continue  # a cell one run did not run at all is not a change of the software
        before, after = b_cases.get(key), n_cases.get(key)
        if before is None and after is not None:
            changes.append(CaseChange(t, s, name, "new", "", after[0]))
            if _bad(after[0]) and not after[2]:
                changes.append(CaseChange(t, s, name, "new-failure", "(absent)", after[0]))
            continue
        if after is None and before is not None:
            changes.append(CaseChange(t, s, name, "gone", before[0], ""))
            continue
        assert before is not None
        assert after is not None
        if not _bad(before[0]) and _bad(after[0]) and not after[2]:
            changes.append(CaseChange(t, s, name, "new-failure", before[0], after[0]))
        elif _bad(before[0]) and not _bad(after[0]):
            changes.append(CaseChange(t, s, name, "fixed", before[0], after[0]))
        elif before[0] == after[0] == "passed" and max(before[1], after[1]) >= MIN_DURATION and before[1] > 0:
            ratio = after[1] / before[1]
            if ratio >= threshold:
                changes.append(CaseChange(t, s, name, "slower", f"{before[1]:.3f}s", f"{after[1]:.3f}s", ratio))
            elif ratio <= 1 / threshold:
                changes.append(CaseChange(t, s, name, "faster", f"{before[1]:.3f}s", f"{after[1]:.3f}s", ratio))
    for mkey in sorted(set(b_metrics) & set(n_metrics)):
        t, s, name, metric = mkey
        direction = lower_is_better(metric)
        old, now = b_metrics[mkey], n_metrics[mkey]
        if direction is None or old <= 0 or now <= 0:
            continue
        worse = now / old if direction else old / now
        label = f"{name} [{metric}]"
        if worse >= threshold:
            changes.append(CaseChange(t, s, label, "slower", f"{old:g}", f"{now:g}", worse))
        elif worse <= 1 / threshold:
            changes.append(CaseChange(t, s, label, "faster", f"{old:g}", f"{now:g}", worse))
    return Comparison(base_run_id=base_id, run_id=new_id, changes=changes)


def compare_ids(
    base_id: str, new_id: str, *, db: Path | None = None, threshold: float = DEFAULT_THRESHOLD
) -> Comparison:
    with connect(db) as conn:
        known = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
        for rid in (base_id, new_id):
            if rid not in known:
                from harness.config import suggest

                raise ConfigError(f'no run "{rid}" in the history{suggest(rid, known)}; see `leapfrog history`.')
        base = (_cases(conn, base_id), _metrics(conn, base_id))
        new = (_cases(conn, new_id), _metrics(conn, new_id))
    return diff(base, new, base_id=base_id, new_id=new_id, threshold=threshold)


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


def regressions(comparison: Comparison) -> list[CaseChange]:
    return [c for c in comparison.changes if c.kind in ("new-failure", "slower")]
