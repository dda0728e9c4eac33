"""Inserting many rows into SQLite in a few steps instead of one step per row.

``executemany`` runs one ``sqlite3_step`` per row, and CPython's sqlite3 module lets go of the GIL and
takes it back around every step. In a writer thread of a busy server each take-back waits for the
event loop's thread to let go of the GIL, then stalls that thread in turn: a thousand rows are a
thousand GIL hand-overs between the two threads. A multi-row ``INSERT ... VALUES (...), (...)`` binds
all its values in C and runs as one step, one hand-over per chunk. Values are bound, never formatted
into the SQL, so floats stay exact and nothing is injected.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any

MAX_CHUNK_ROWS = 512  # rows per statement; x 13 columns stays far below SQLite's 32,766 variables


@cache
def _statement(head: str, width: int, rows: int) -> str:
    one = "(" + ",".join("?" * width) + ")"
    return f"{head} {','.join(itertools.repeat(one, rows))}"


def chunk_sizes(n: int, max_rows: int = MAX_CHUNK_ROWS) -> list[int]:
    """``n`` split into chunks of ``max_rows`` and then powers of two: few distinct statements to prepare
    (the connection caches them), however many rows come."""
    sizes = [max_rows] * (n // max_rows)
    rest = n % max_rows
    while rest:
        size = 1 << (rest.bit_length() - 1)
        sizes.append(size)
        rest -= size
    return sizes


def insert_many(conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]]) -> None:
    """``head`` is the statement before its values, e.g. ``INSERT OR IGNORE INTO t (a, b) VALUES``; every
    row has one value per column. Runs inside the caller's transaction."""
    if not rows:
        return
    width = len(rows[0])
    start = 0
    for size in chunk_sizes(len(rows)):
        chunk = rows[start : start + size]
        if any(len(r) != width for r in chunk):
            raise ValueError(f"every row must have {width} values")
        conn.execute(_statement(head, width, size), list(itertools.chain.from_iterable(chunk)))
        start += size
