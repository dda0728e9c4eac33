"""``insert_many``: many rows in a few multi-row statements, values exact, nothing lost or injected."""

from __future__ import annotations

import random
import sqlite3

import pytest

from fraud_detection.sqlite_bulk import MAX_CHUNK_ROWS, chunk_sizes, insert_many


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 511, 512, 513, 1000, 2049])
def test_chunks_cover_every_row_with_few_distinct_sizes(n):
    sizes = chunk_sizes(n)
    assert sum(sizes) == n
    assert all(0 < s <= MAX_CHUNK_ROWS for s in sizes)
    assert all(s == MAX_CHUNK_ROWS or s & (s - 1) == 0 for s in sizes)  # the rest in powers of two
    assert len(sizes) <= n // MAX_CHUNK_ROWS + MAX_CHUNK_ROWS.bit_length()


def _table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, x REAL, n INTEGER)")
    return conn


@pytest.mark.parametrize("n", [1, 5, 600, 1300])
def test_every_row_is_stored_exactly_in_one_statement_per_chunk(n):
    rng = random.Random(n)
    rows = [
        (f"k'{i}\"); DROP TABLE t; --", rng.uniform(-1e6, 1e6) * rng.random(), rng.getrandbits(62)) for i in range(n)
    ]
    rows[0] = (rows[0][0], 0.1 + 0.2, -(2**63))  # floats and integers round-trip bit for bit
    conn = _table()
    statements = []
    conn.set_trace_callback(statements.append)
    insert_many(conn, "INSERT OR IGNORE INTO t (k, x, n) VALUES", rows)
    conn.set_trace_callback(None)
    assert len(statements) == len(chunk_sizes(n))  # executemany would run one statement per row
    assert sorted(conn.execute("SELECT k, x, n FROM t").fetchall()) == sorted(rows)


def test_or_ignore_keeps_the_first_and_rows_must_have_one_width():
    conn = _table()
    insert_many(conn, "INSERT OR IGNORE INTO t VALUES", [("a", 1.0, 1)])
    insert_many(conn, "INSERT OR IGNORE INTO t VALUES", [("a", 2.0, 2), ("b", 3.0, 3)])
    assert conn.execute("SELECT k, x, n FROM t ORDER BY k").fetchall() == [("a", 1.0, 1), ("b", 3.0, 3)]
    with pytest.raises(ValueError, match="3 values"):
        insert_many(conn, "INSERT OR IGNORE INTO t VALUES", [("c", 1.0, 1), ("d", 1.0)])
    insert_many(conn, "INSERT OR IGNORE INTO t VALUES", [])
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
