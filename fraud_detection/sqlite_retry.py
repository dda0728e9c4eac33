"""Retrying SQLite operations that another process's lock makes fail at once.

Several processes share each SQLite file here (the API's workers, the launcher's workers, the watcher).
SQLite's busy timeout covers most waits, but not all: switching a new file to WAL mode, for one, fails
with "database is locked" at once while another connection opens the same file. ``retry_busy`` retries
such an operation in short, growing sleeps until a deadline.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry_busy(op: Callable[[], T], deadline_s: float = 10.0) -> T:
    """Run a SQLite operation, retrying while another process holds the lock (short sleeps)."""
    start = time.monotonic()
    delay = 0.00005
    while True:
        try:
            return op()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() - start > deadline_s:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.005)


def use_wal(conn: sqlite3.Connection, deadline_s: float = 30.0) -> None:
    """Put the connection's file in WAL mode (a no-op when it is), waiting out other openers."""
    retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"), deadline_s)
