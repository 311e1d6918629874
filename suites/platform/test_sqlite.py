"""sqlite3: in-memory databases, transactions, JSON1, user functions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)  # explicit transactions
    try:
        yield conn
    finally:
        conn.close()


def test_sqlite_basic_queries(db: sqlite3.Connection, metrics: dict[str, Any]) -> None:
    metrics["sqlite_version"] = sqlite3.sqlite_version
    metrics["sqlite_threadsafety"] = sqlite3.threadsafety
    assert sqlite3.sqlite_version_info >= (3, 31, 0)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, data BLOB)")
    rows = [(i, f"name{i:04d}", i * 0.5, bytes([i % 256]) * 3) for i in range(1000)]
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    assert db.execute("SELECT count(*), sum(id), max(score) FROM t").fetchone() == (1000, 499500, 499.5)
    assert db.execute("SELECT name FROM t WHERE id = ?", (42,)).fetchone() == ("name0042",)
    assert db.execute("SELECT data FROM t WHERE id = 300").fetchone() == (b"\x2c\x2c\x2c",)
    db.execute("CREATE INDEX t_score ON t(score)")
    plan = " ".join(str(r) for r in db.execute("EXPLAIN QUERY PLAN SELECT id FROM t WHERE score > 10"))
    assert "t_score" in plan
    # Unicode collation-free ordering and LIKE
    assert db.execute("SELECT count(*) FROM t WHERE name LIKE 'name09%'").fetchone() == (100,)


def test_sqlite_transactions(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE acct (name TEXT PRIMARY KEY, balance INTEGER CHECK (balance >= 0))")
    db.executemany("INSERT INTO acct VALUES (?, ?)", [("a", 100), ("b", 0)])
    db.execute("BEGIN")
    db.execute("UPDATE acct SET balance = balance - 30 WHERE name = 'a'")
    db.execute("UPDATE acct SET balance = balance + 30 WHERE name = 'b'")
    db.execute("COMMIT")
    db.execute("BEGIN")
    db.execute("UPDATE acct SET balance = balance + 1000 WHERE name = 'b'")
    db.execute("ROLLBACK")
    assert dict(db.execute("SELECT name, balance FROM acct")) == {"a": 70, "b": 30}
    db.execute("BEGIN")
    db.execute("SAVEPOINT sp")
    db.execute("UPDATE acct SET balance = 0 WHERE name = 'a'")
    db.execute("ROLLBACK TO sp")
    db.execute("RELEASE sp")
    db.execute("COMMIT")
    assert db.execute("SELECT balance FROM acct WHERE name = 'a'").fetchone() == (70,)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE acct SET balance = -1 WHERE name = 'a'")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO acct VALUES ('a', 1)")


def test_sqlite_json1(db: sqlite3.Connection, metrics: dict[str, Any]) -> None:
    try:
        db.execute("SELECT json('{}')").fetchone()
    except sqlite3.OperationalError:
        metrics["sqlite_json1"] = False
        pytest.skip(f"SQLite {sqlite3.sqlite_version} was built without JSON1")
    metrics["sqlite_json1"] = True
    doc = '{"model": "resnet", "shape": [1, 3, 224, 224], "fp16": true}'
    assert db.execute("SELECT json_extract(?, '$.shape[2]')", (doc,)).fetchone() == (224,)
    assert db.execute("SELECT json_array_length(?, '$.shape')", (doc,)).fetchone() == (4,)
    assert db.execute("SELECT json_type(?, '$.fp16')", (doc,)).fetchone() == ("true",)
    got = db.execute("SELECT group_concat(value, ',') FROM json_each(?, '$.shape')", (doc,)).fetchone()
    assert got == ("1,3,224,224",)


def test_sqlite_numbers_and_functions(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE n (i INTEGER, r REAL)")
    db.executemany("INSERT INTO n VALUES (?, ?)", [(2**63 - 1, 0.1), (-(2**63), 1e-310), (0, -0.0)])
    got = db.execute("SELECT i, r FROM n ORDER BY i").fetchall()
    assert got[0] == (-(2**63), 1e-310)  # 64-bit ints and subnormals round-trip
    assert got[2] == (2**63 - 1, 0.1)
    assert db.execute("SELECT 1e308 * 10").fetchone()[0] == float("inf")
    with pytest.raises(OverflowError):
        db.execute("SELECT ?", (2**63,))
    db.create_function("rev", 1, lambda s: s[::-1], deterministic=True)

    class Product:
        def __init__(self) -> None:
            self.value = 1

        def step(self, x: int) -> None:
            self.value *= x

        def finalize(self) -> int:
            return self.value

    db.create_aggregate("product", 1, Product)  # type: ignore[arg-type]
    assert db.execute("SELECT rev('riscv')").fetchone() == ("vcsir",)
    product_query = "SELECT product(v) FROM (SELECT 2 AS v UNION ALL SELECT 3 UNION ALL SELECT 7)"
    assert db.execute(product_query).fetchone() == (42,)
