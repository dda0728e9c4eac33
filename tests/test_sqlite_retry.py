"""``retry_busy`` / ``use_wal``: SQLite's "database is locked" that the busy timeout does not cover."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from fraud_detection.sqlite_retry import retry_busy, use_wal


def test_locked_is_retried_until_the_operation_succeeds():
    calls = []

    def op():
        calls.append(1)
        if len(calls) < 4:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert retry_busy(op) == "done" and len(calls) == 4


def test_other_errors_and_a_lock_past_the_deadline_are_raised():
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        retry_busy(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("no such table: x")))
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        retry_busy(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked")), deadline_s=0.05)


def test_wal_switch_waits_for_another_connection_holding_the_file(tmp_path):
    """A second connection cannot switch the file to WAL while the first holds an exclusive lock, and
    fails at once without a busy timeout; ``use_wal`` waits until the first lets go."""
    path = tmp_path / "kv.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("PRAGMA journal_mode=WAL")
    threading.Timer(0.2, holder.execute, ("COMMIT",)).start()
    use_wal(other, deadline_s=10)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    holder.close()
    other.close()
