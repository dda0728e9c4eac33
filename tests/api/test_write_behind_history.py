"""The API's buffered card history: reads see buffered appends at once, duplicates count once, a flush
writes them all in one go, a failed flush keeps them, close loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from fraud_detection.card_history import SqliteCardHistory, WriteBehindHistory

T0 = 1_600_000_000


def _stored(path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT card_key, ts, trans_id, amt FROM card_history ORDER BY ts, trans_id").fetchall()


def test_reads_merge_the_buffer_and_flush_writes_it(tmp_path):
    path = tmp_path / "h.sqlite"
    h = WriteBehindHistory(SqliteCardHistory(path), max_pending=1000, max_delay_s=3600)
    h.append("c1", "t1", (T0, 10.0, 1))
    h.append("c1", "t2", (T0 + 60, 20.0, 2))
    h.append("c2", "t3", (T0 + 30, 5.0, 3))
    assert _stored(path) == []  # nothing written yet...
    assert h.read("c1", T0 + 61) == [(T0, 10.0, 1), (T0 + 60, 20.0, 2)]  # ...but this process sees it
    assert h.read("c1", T0 + 60) == [(T0, 10.0, 1)]  # strictly before the time asked for
    h.flush()
    assert [r[2] for r in _stored(path)] == ["t1", "t3", "t2"]
    assert h.read("c1", T0 + 61) == [(T0, 10.0, 1), (T0 + 60, 20.0, 2)]


def test_a_transaction_sent_again_counts_once(tmp_path):
    h = WriteBehindHistory(SqliteCardHistory(tmp_path / "h.sqlite"), max_pending=1000, max_delay_s=3600)
    h.append("c1", "t1", (T0, 10.0, 1))
    h.flush()
    h.append("c1", "t1", (T0, 10.0, 1))  # stored already, and buffered again
    h.append("c1", "t2", (T0 + 5, 7.0, 1))
    h.append("c1", "t2", (T0 + 5, 7.0, 1))
    assert h.read("c1", T0 + 10) == [(T0, 10.0, 1), (T0 + 5, 7.0, 1)]
    h.close()
    assert len(_stored(tmp_path / "h.sqlite")) == 2


def test_flushes_by_count_and_by_age(tmp_path):
    path = tmp_path / "h.sqlite"
    h = WriteBehindHistory(SqliteCardHistory(path), max_pending=3, max_delay_s=3600)
    for i in range(3):
        h.append("c", f"t{i}", (T0 + i, 1.0, 0))
    assert len(_stored(path)) == 3
    aged = WriteBehindHistory(SqliteCardHistory(tmp_path / "a.sqlite"), max_pending=1000, max_delay_s=0.0)
    aged.append("c", "t", (T0, 1.0, 0))
    asyncio.run(aged.flush_due_async())
    assert len(_stored(tmp_path / "a.sqlite")) == 1


def test_records_in_flight_stay_visible_until_their_commit_ends(tmp_path):
    inner = SqliteCardHistory(tmp_path / "h.sqlite")
    h = WriteBehindHistory(inner, max_pending=1000, max_delay_s=0.0)
    started, release = threading.Event(), threading.Event()
    real = inner.append_many

    def slow_commit(items):  # the worker thread's commit, held open while the loop keeps reading
        started.set()
        release.wait(10)
        real(items)

    inner.append_many = slow_commit

    async def scenario():
        h.append("c", "t1", (T0, 10.0, 1))
        flush = asyncio.create_task(h.flush_due_async())
        await asyncio.to_thread(started.wait, 10)
        h.append("c", "t2", (T0 + 5, 7.0, 1))  # while t1 is being written
        seen = h.read("c", T0 + 10)
        release.set()
        await flush
        return seen

    assert asyncio.run(scenario()) == [(T0, 10.0, 1), (T0 + 5, 7.0, 1)]
    assert h.read("c", T0 + 10) == [(T0, 10.0, 1), (T0 + 5, 7.0, 1)]  # t1 stored, t2 still buffered
    h.close()
    assert [r[2] for r in _stored(tmp_path / "h.sqlite")] == ["t1", "t2"]


def test_a_failed_commit_in_the_worker_thread_keeps_the_records(tmp_path, monkeypatch):
    inner = SqliteCardHistory(tmp_path / "h.sqlite")
    h = WriteBehindHistory(inner, max_pending=1000, max_delay_s=0.0)
    real = inner.append_many
    monkeypatch.setattr(inner, "append_many", lambda items: (_ for _ in ()).throw(sqlite3.OperationalError("busy")))
    h.append("c", "t1", (T0, 1.0, 0))
    asyncio.run(h.flush_due_async())  # logged, not raised
    assert _stored(tmp_path / "h.sqlite") == [] and h.read("c", T0 + 1) == [(T0, 1.0, 0)]
    monkeypatch.setattr(inner, "append_many", real)
    asyncio.run(h.flush_due_async())
    assert [r[2] for r in _stored(tmp_path / "h.sqlite")] == ["t1"]


def test_a_failed_flush_keeps_the_records_and_close_writes_them(tmp_path, monkeypatch):
    inner = SqliteCardHistory(tmp_path / "h.sqlite")
    h = WriteBehindHistory(inner, max_pending=2, max_delay_s=3600)
    real = inner.append_many
    monkeypatch.setattr(inner, "append_many", lambda items: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O")))
    h.append("c", "t1", (T0, 1.0, 0))
    h.append("c", "t2", (T0 + 1, 2.0, 0))  # triggers a flush that fails: logged, not raised to the request
    assert h.read("c", T0 + 2) == [(T0, 1.0, 0), (T0 + 1, 2.0, 0)]
    with pytest.raises(sqlite3.OperationalError):
        h.flush()
    monkeypatch.setattr(inner, "append_many", real)
    h.close()
    assert [r[2] for r in _stored(tmp_path / "h.sqlite")] == ["t1", "t2"]


def test_a_replay_keeps_the_window_by_transaction_time_and_nothing_older(tmp_path):
    """A year of one card's transactions replayed in monthly batches (timestamps of the past, as a
    backfill writes them): the file keeps what the newest transaction's window needs, nothing older."""
    path = tmp_path / "h.sqlite"
    day = 86_400
    inner = SqliteCardHistory(path, ttl_days=35, prune_interval_s=0)  # prune after every write
    h = WriteBehindHistory(inner, max_pending=100_000, max_delay_s=3600)
    records = [("c1", f"t{i}", (T0 + i * day // 4, 1.0 + i, i % 5)) for i in range(365 * 4)]  # 4 a day
    for month in range(12):
        h.append_many(records[month * 120 : (month + 1) * 120])
        h.flush()
    h.append_many(records[1440:])
    h.flush()
    newest = records[-1][2][0]
    kept = _stored(path)
    assert kept and min(ts for _, ts, _, _ in kept) >= newest - 35 * day
    assert len(kept) == sum(1 for *_, r in records if r[0] >= newest - 35 * day)  # 141 of 1,460
    # what the history features of the next transaction read is all there
    window = [r for *_, r in records if newest + 1 - 30 * day <= r[0] < newest + 1]
    assert h.read("c1", newest + 1) == window
    h.close()


def test_pruning_runs_once_a_day_of_transaction_time_or_after_its_interval(tmp_path):
    path = tmp_path / "h.sqlite"
    day = 86_400
    inner = SqliteCardHistory(path, ttl_days=35, prune_interval_s=3600)
    inner.append_many([("c1", "new", (T0 + 40 * day, 1.0, 0))])  # the first write prunes: pruned at T0 + 40d
    inner.append_many([("c1", "stale", (T0, 2.0, 0))])  # expired, but the data's clock has not moved a day
    assert [t for _, _, t, _ in _stored(path)] == ["stale", "new"]
    inner.append_many([("c1", "next", (T0 + 41 * day, 3.0, 0))])  # a day on: pruned
    assert [t for _, _, t, _ in _stored(path)] == ["new", "next"]
    assert inner.prune() == 0  # an explicit prune finds nothing more in the window's past
    inner.close()
