"""The key-value store behind idempotency and pending requests: the same contract on SQLite and DynamoDB."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from fraud_detection.idempotency import DynamoStore, SqliteStore


@pytest.fixture(params=["sqlite", "dynamodb"])
def kv(request, tmp_path):
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "kv.sqlite")
    from conftest import TABLE  # here, not at module top: spawned children re-import this module

    aws = request.getfixturevalue("aws")
    return DynamoStore(TABLE, endpoint_url=aws.url)


def test_claim_once_then_duplicate_with_result(kv):
    assert kv.claim("k", lease_s=60, ttl_s=3600).acquired
    again = kv.claim("k", lease_s=60, ttl_s=3600)
    assert not again.acquired and again.status == "in_progress"
    kv.complete("k", {"run_id": "r1"}, ttl_s=3600)
    dup = kv.claim("k", lease_s=60, ttl_s=3600)
    assert not dup.acquired and dup.status == "completed" and dup.result == {"run_id": "r1"}


def test_released_claim_and_abandoned_lease_can_be_taken_again(kv):
    assert kv.claim("a", lease_s=60, ttl_s=3600).acquired
    kv.release("a")
    assert kv.claim("a", lease_s=60, ttl_s=3600).acquired
    assert kv.claim("b", lease_s=0.2, ttl_s=3600).acquired  # a handler that died holding it
    time.sleep(0.4)
    assert kv.claim("b", lease_s=60, ttl_s=3600).acquired
    kv.complete("b", {}, ttl_s=3600)
    time.sleep(0.3)
    assert not kv.claim("b", lease_s=0.1, ttl_s=3600).acquired  # completed records have no lease


def test_expired_items_count_as_absent(kv):
    kv.put("x", {"v": 1}, ttl_s=-1)  # TTL deletion is lazy on DynamoDB: reads must check expires_at
    assert kv.get("x") is None
    assert kv.claim("x", lease_s=60, ttl_s=3600).acquired


def test_append_merges_into_one_pending_item_and_take_empties_it(kv):
    a = kv.append("p", "files", ["raw/a.csv"], {"run_id": "r1", "trigger": "file"}, ttl_s=3600)
    b = kv.append("p", "files", ["raw/b.csv"], {"run_id": "r2", "trigger": "schedule"}, ttl_s=3600)
    assert a["run_id"] == b["run_id"] == "r1" and b["trigger"] == "file"
    assert b["files"] == ["raw/a.csv", "raw/b.csv"]
    taken = kv.take("p")
    assert taken["files"] == ["raw/a.csv", "raw/b.csv"] and taken["run_id"] == "r1"
    assert kv.take("p") is None and kv.get("p") is None


def test_concurrent_claims_have_one_winner(kv):
    n = 12
    barrier = threading.Barrier(n)
    wins = []

    def claim():
        barrier.wait(timeout=30)
        wins.append(kv.claim("race", lease_s=60, ttl_s=3600).acquired)

    threads = [threading.Thread(target=claim) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(wins) == [False] * (n - 1) + [True]


def _claim_in_process(path: str, start_at: float, q) -> None:
    store = SqliteStore(path)
    time.sleep(max(0.0, start_at - time.time()))
    q.put(store.claim("proc-race", lease_s=60, ttl_s=3600).acquired)


def test_sqlite_claims_across_processes_have_one_winner(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 3
    procs = [ctx.Process(target=_claim_in_process, args=(str(tmp_path / "kv.sqlite"), start_at, q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)  # spawned interpreters import the project: slow on a loaded 2-core machine
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    wins = sorted(q.get(timeout=60) for _ in procs)
    assert wins == [False, False, False, True]
