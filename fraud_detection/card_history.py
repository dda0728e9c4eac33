"""Online store of each card's recent transactions, read to build history features at serving time.

A card is only ever known here by its keyed hash (``card_key``). Each stored transaction is the
``features.history_record`` of a scored transaction: (epoch seconds, amount, category index), plus its
transaction id so that scoring the same transaction twice stores it once (as the training table holds it
once). Reads return the card's transactions strictly before a time and within ``features.MAX_WINDOW_S``,
which is all the history features look at.

Two backends behind one interface, chosen by settings (``kv_backend``):

* ``SqliteCardHistory``: a SQLite file under ``<store>/state/`` (embedded default). WAL mode, no fsync
  per commit: a read or an append costs tens of microseconds, cheap enough for the request path.
* ``DynamoCardHistory``: the DynamoDB table ``settings.card_history_table``, partition key ``card_key``
  (S), sort key ``ts_id`` (S: zero-padded epoch seconds + ``#`` + transaction id), TTL ``expires_at``.

Expiry. On SQLite a record expires ``ttl_days`` after its transaction's time, and what has expired
relative to the newest transaction stored is pruned after a write, once a day of transaction time or
``prune_interval_s`` of wall time has passed since the last prune (a fast replay prunes daily too):
a replay or a backfill of older months keeps the window and nothing older, as live traffic does. On
DynamoDB the TTL attribute is compared with the clock, so an item expires ``ttl_days`` after the later
of its transaction's time and its writing (a backfill is not deleted on arrival); reads filter by the
window either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, TypeVar

from fraud_detection.dynamodb_writes import chunks, write_chunk
from fraud_detection.features import MAX_WINDOW_S
from fraud_detection.sqlite_bulk import insert_many
from fraud_detection.sqlite_retry import retry_busy, use_wal

log = logging.getLogger(__name__)

Record = tuple[int, float, int]  # (epoch seconds, amount, category index)
PRUNE_EVERY_DATA_S = 86_400  # prune when the stored transactions' time has moved on a day
Keyed = tuple[int, str]  # (epoch seconds, transaction id): a stored transaction's identity
T = TypeVar("T")
R = TypeVar("R")
_TS_DIGITS = 12


class CardHistoryStore(Protocol):
    def read(self, card_key: str, before_ts: int, since_ts: int | None = None) -> list[Record]:
        """The card's transactions with ``since_ts <= ts < before_ts``, oldest first; ``since_ts``
        defaults to ``before_ts - MAX_WINDOW_S``, all the history features look at
        (``features.History.from_records`` turns them into the row engine's history)."""
        ...

    def append(self, card_key: str, trans_id: str, record: Record) -> None:
        """Remember a scored transaction (idempotent per ``trans_id``)."""
        ...

    def append_many(self, items: list[tuple[str, str, Record]]) -> None:
        """``append`` for many (card_key, trans_id, record) at once."""
        ...

    def read_many(self, card_keys: list[str], since_ts: int, before_ts: int) -> dict[str, dict[Keyed, Record]]:
        """Several cards' transactions with ``since_ts <= ts < before_ts``, keyed by (ts, trans_id)."""
        ...

    def close(self) -> None: ...


class SqliteCardHistory:
    """One SQLite file; one connection per thread (the event loop's thread does all hot-path calls)."""

    remote = False  # calls take microseconds: fine on an event loop

    _DDL = (
        "CREATE TABLE IF NOT EXISTS card_history ("
        " card_key TEXT NOT NULL, ts INTEGER NOT NULL, trans_id TEXT NOT NULL,"
        " amt REAL NOT NULL, category_idx INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
        " PRIMARY KEY (card_key, ts, trans_id)) WITHOUT ROWID"
    )

    _INDEX = "CREATE INDEX IF NOT EXISTS card_history_expiry ON card_history (expires_at)"

    def __init__(
        self, path: str | Path, *, ttl_days: int = 35, max_rows: int = 2000, prune_interval_s: float = 60.0
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_days * 86400
        self.max_rows = max_rows
        self.prune_interval_s = prune_interval_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._newest_ts: int | None = None  # of the transactions this process stored
        self._pruned_at = float("-inf")
        self._pruned_ts: int | None = None  # the newest transaction time at the last prune
        conn = self._conn()
        retry_busy(lambda: conn.execute(self._DDL))
        retry_busy(lambda: conn.execute(self._INDEX))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # timeout=0: a lock held by another worker process is retried in short, growing steps
            # (``retry_busy``), not by SQLite's busy handler, whose first sleep is a whole millisecond.
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            use_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA mmap_size=1073741824")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def read(self, card_key: str, before_ts: int, since_ts: int | None = None) -> list[Record]:
        since = before_ts - MAX_WINDOW_S if since_ts is None else since_ts
        conn = self._conn()
        rows = retry_busy(
            lambda: conn.execute(
                "SELECT ts, amt, category_idx FROM card_history WHERE card_key = ? AND ts >= ? AND ts < ?"
                " ORDER BY ts DESC LIMIT ?",
                (card_key, since, before_ts, self.max_rows),
            ).fetchall()
        )
        return rows[::-1]

    def read_with_ids(self, card_key: str, before_ts: int, since_ts: int) -> dict[tuple[int, str], Record]:
        """Like ``read``, keyed by (ts, trans_id): what ``WriteBehindHistory`` merges its buffer into."""
        conn = self._conn()
        rows = retry_busy(
            lambda: conn.execute(
                "SELECT ts, trans_id, amt, category_idx FROM card_history WHERE card_key = ? AND ts >= ?"
                " AND ts < ? ORDER BY ts DESC LIMIT ?",
                (card_key, since_ts, before_ts, self.max_rows),
            ).fetchall()
        )
        return {(ts, tid): (ts, amt, cat) for ts, tid, amt, cat in reversed(rows)}

    def read_many(self, card_keys: list[str], since_ts: int, before_ts: int) -> dict[str, dict[Keyed, Record]]:
        conn = self._conn()
        out: dict[str, dict[Keyed, Record]] = {k: {} for k in card_keys}
        rows = retry_busy(
            lambda: conn.execute(
                "SELECT card_key, ts, trans_id, amt, category_idx FROM card_history"
                " WHERE card_key IN (SELECT value FROM json_each(?)) AND ts >= ? AND ts < ?",
                (json.dumps(card_keys), since_ts, before_ts),
            ).fetchall()
        )
        for ck, ts, tid, amt, cat in rows:
            out[ck][(ts, tid)] = (ts, amt, cat)
        return out

    def append(self, card_key: str, trans_id: str, record: Record) -> None:
        ts, amt, cat = record
        conn = self._conn()
        row = (card_key, int(ts), trans_id, float(amt), int(cat), int(ts) + self.ttl_s)
        retry_busy(lambda: conn.execute("INSERT OR IGNORE INTO card_history VALUES (?, ?, ?, ?, ?, ?)", row))
        self._stored(int(ts))

    def append_many(self, items: list[tuple[str, str, Record]]) -> None:
        if not items:
            return
        conn = self._conn()
        rows = [(k, int(r[0]), tid, float(r[1]), int(r[2]), int(r[0]) + self.ttl_s) for k, tid, r in items]

        def write() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                insert_many(conn, "INSERT OR IGNORE INTO card_history VALUES", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        retry_busy(write)
        self._stored(max(r[1] for r in rows))

    def _stored(self, ts: int) -> None:
        """Note the newest transaction time stored; prune if the last prune is a day of transaction time
        or ``prune_interval_s`` of wall time old."""
        self._newest_ts = ts if self._newest_ts is None else max(self._newest_ts, ts)
        data_day = self._pruned_ts is not None and self._newest_ts - self._pruned_ts >= PRUNE_EVERY_DATA_S
        if data_day or time.monotonic() - self._pruned_at >= self.prune_interval_s:
            self.prune()

    def prune(self, now_ts: int | None = None) -> int:
        """Delete the records expired at ``now_ts`` (default: the newest transaction time stored by this
        process), so that the file holds the window and nothing older. Returns how many went."""
        self._pruned_at = time.monotonic()
        now = self._newest_ts if now_ts is None else now_ts
        if now is None:
            return 0
        self._pruned_ts = now
        conn = self._conn()
        cur = retry_busy(lambda: conn.execute("DELETE FROM card_history WHERE expires_at < ?", (now,)))
        if cur.rowcount:
            older_than = datetime.fromtimestamp(now - self.ttl_s, UTC).isoformat()  # epoch seconds read as a card
            log.info("card history pruned", extra={"deleted": cur.rowcount, "older_than": older_than})
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()


class WriteBehindHistory:
    """A local store whose appends are buffered and written in one transaction per flush.

    A SQLite commit per scored transaction costs more than building its features; here appends collect
    in memory and are written together once the oldest has waited ``max_delay_s``: the service's timer
    calls ``flush_due_async``, which commits in a worker thread, so a slow commit (a WAL checkpoint,
    another worker holding the write lock) never stalls the event loop. Records
    being written stay visible ("in flight") until their commit ends. Reads merge the buffered and
    in-flight records of the card, so this process sees its own appends at once; another worker
    process sees them after the commit (``max_delay_s`` later and the commit's time). ``flush`` writes
    synchronously (``close``, and a safety valve at ``max_pending``). All bookkeeping happens on the
    caller's thread (the event loop); the worker thread only runs the SQL.
    """

    remote = False

    def __init__(self, inner: SqliteCardHistory, *, max_pending: int = 20_000, max_delay_s: float = 0.02) -> None:
        self.inner = inner
        self.max_pending = max_pending
        self.max_delay_s = max_delay_s
        self.max_rows = getattr(inner, "max_rows", 2000)
        self._pending: dict[str, dict[Keyed, Record]] = {}
        self._inflight: dict[str, dict[Keyed, Record]] = {}
        self._count = 0
        self._deadline = float("inf")

    def _unwritten(self, card_key: str, since: int, before_ts: int) -> dict[Keyed, Record]:
        found: dict[Keyed, Record] = {}
        for buffer in (self._inflight, self._pending):
            mine = buffer.get(card_key)
            if mine:
                found.update({k: r for k, r in mine.items() if since <= k[0] < before_ts})
        return found

    def read(self, card_key: str, before_ts: int, since_ts: int | None = None) -> list[Record]:
        since = before_ts - MAX_WINDOW_S if since_ts is None else since_ts
        extra = self._unwritten(card_key, since, before_ts) if self._pending or self._inflight else None
        if not extra:
            return self.inner.read(card_key, before_ts, since)
        # Unwritten records of this card fall in the window (two of its transactions within a flush):
        # merge by (ts, trans_id), so a transaction stored (or being stored) and sent again counts once.
        merged = self.inner.read_with_ids(card_key, before_ts, since)
        merged.update(extra)
        rows = sorted(merged.items())  # (ts, trans_id) order, as the store's primary key orders them
        return [r for _, r in rows[-self.max_rows :]]

    def read_many(self, card_keys: list[str], since_ts: int, before_ts: int) -> dict[str, dict[Keyed, Record]]:
        out = self.inner.read_many(card_keys, since_ts, before_ts)
        if self._pending or self._inflight:
            for ck in card_keys:
                out[ck].update(self._unwritten(ck, since_ts, before_ts))
        return out

    def append(self, card_key: str, trans_id: str, record: Record) -> None:
        self.append_many([(card_key, trans_id, record)])

    def append_many(self, items: list[tuple[str, str, Record]]) -> None:
        for card_key, trans_id, record in items:
            self._pending.setdefault(card_key, {})[(int(record[0]), trans_id)] = record
        if items and not self._count:
            self._deadline = time.monotonic() + self.max_delay_s
        self._count += len(items)
        if self._count >= self.max_pending:  # a safety valve: normally the timer writes
            self._flush_logged()

    def _take(self) -> list[tuple[str, str, Record]]:
        """Move the buffer in flight; the (card_key, trans_id, record) items to write."""
        self._inflight, self._pending, self._count = self._pending, {}, 0
        self._deadline = float("inf")
        return [(ck, tid, rec) for ck, recs in self._inflight.items() for (_, tid), rec in recs.items()]

    def _written(self, ok: bool) -> None:
        """The in-flight records are stored (ok) or go back in front of anything appended since."""
        inflight, self._inflight = self._inflight, {}
        if not ok:
            n = 0
            for ck, recs in inflight.items():
                self._pending[ck] = {**recs, **self._pending.get(ck, {})}
                n += len(recs)
            self._count += n
            self._deadline = time.monotonic() + self.max_delay_s

    async def flush_due_async(self) -> None:
        """If the oldest buffered record has waited ``max_delay_s``: commit in a worker thread."""
        if not self._count or self._inflight or time.monotonic() < self._deadline:
            return
        items = self._take()
        write = asyncio.ensure_future(asyncio.to_thread(self.inner.append_many, items))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:  # shutting down: let the commit end before the store closes
            await asyncio.wait([write])
            raise
        except Exception:  # logged, kept, retried: a failed commit must not stop the timer
            log.exception("card history flush failed; %d records kept for the next attempt", len(items))
        finally:
            if write.done():
                self._written(not write.cancelled() and write.exception() is None)

    def _flush_logged(self) -> None:
        """A failed write must not fail the request that triggered it: log it, keep the records, retry."""
        try:
            self.flush()
        except Exception:
            log.exception("card history flush failed; %d records kept for the next attempt", self._count)

    def flush(self) -> None:
        """Write every buffered record now, in one transaction; on failure keep them and raise."""
        if not self._count or self._inflight:  # a commit in flight: the next flush takes the rest
            return
        items = self._take()
        try:
            self.inner.append_many(items)
        except Exception:
            self._written(False)
            raise
        self._written(True)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.inner.close()


def _ts_id(ts: int, trans_id: str) -> str:
    if ts < 0:
        raise ValueError("transaction time before 1970 is not supported by the history store")
    return f"{ts:0{_TS_DIGITS}d}#{trans_id}"


class DynamoCardHistory:
    """The DynamoDB table: one item per (card_key, ts_id), expiring through TTL ``expires_at``.

    A batch's cards are read with one Query each and written 25 items per BatchWriteItem; up to
    ``concurrency`` of these calls are in flight at once (a thread pool: a call waits on the network
    without the GIL), so their round trips overlap; the CPU each call costs (botocore's signing and
    parsing) does not, and bounds the gain (``bench/dynamo_history.py``). The client's connection pool
    must be at least as large.
    """

    remote = True  # network round trips: callers on an event loop run us in a thread

    def __init__(
        self, table_name: str, *, client=None, ttl_days: int = 35, max_rows: int = 2000, concurrency: int = 16
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.table = table_name
        self.ttl_s = ttl_days * 86400
        self.max_rows = max_rows
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def _map(self, fn: Callable[[T], R], items: list[T]) -> list[R]:
        """``fn`` over ``items`` in order, up to ``concurrency`` calls in flight; the first error is raised."""
        if self.concurrency == 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="card-history-dynamodb")
        return list(self._pool.map(fn, items))

    def _query(self, card_key: str, since: int, before_ts: int) -> list[tuple[Keyed, Record]]:
        """The card's newest ``max_rows`` transactions with ``since <= ts < before_ts``, newest first."""
        lo = _ts_id(max(since, 0), "")
        hi = _ts_id(max(before_ts, 0), "")  # '#' sorts before any id: ts_id < hi means ts < before_ts
        kwargs = {
            "TableName": self.table,
            "KeyConditionExpression": "card_key = :k AND ts_id BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":k": {"S": card_key}, ":lo": {"S": lo}, ":hi": {"S": hi}},
            "ProjectionExpression": "ts_id, amt, category_idx",
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        found: list[tuple[Keyed, Record]] = []
        while len(found) < self.max_rows:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                ts_text, trans_id = item["ts_id"]["S"].split("#", 1)
                ts = int(ts_text)
                if ts < before_ts:
                    found.append(((ts, trans_id), (ts, float(item["amt"]["N"]), int(item["category_idx"]["N"]))))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[: self.max_rows]

    def read(self, card_key: str, before_ts: int, since_ts: int | None = None) -> list[Record]:
        since = before_ts - MAX_WINDOW_S if since_ts is None else since_ts
        return [r for _, r in reversed(self._query(card_key, since, before_ts))]

    def read_many(self, card_keys: list[str], since_ts: int, before_ts: int) -> dict[str, dict[Keyed, Record]]:
        found = self._map(lambda ck: dict(reversed(self._query(ck, since_ts, before_ts))), card_keys)
        return dict(zip(card_keys, found, strict=True))

    def _item(self, card_key: str, trans_id: str, record: Record) -> dict:
        ts, amt, cat = record
        # DynamoDB's TTL compares with the clock: by the transaction's time, a backfill of older months
        # would be deleted within days of loading; so ttl_days after the later of the two
        expires = max(int(ts), int(time.time())) + self.ttl_s
        return {
            "card_key": {"S": card_key},
            "ts_id": {"S": _ts_id(int(ts), trans_id)},
            "amt": {"N": repr(float(amt))},
            "category_idx": {"N": str(int(cat))},
            "expires_at": {"N": str(expires)},
        }

    def append(self, card_key: str, trans_id: str, record: Record) -> None:
        self.client.put_item(TableName=self.table, Item=self._item(card_key, trans_id, record))

    def append_many(self, items: list[tuple[str, str, Record]]) -> None:
        unique = {(k, _ts_id(int(r[0]), tid)): (k, tid, r) for k, tid, r in items}  # batch write rejects dupes
        requests = [{"PutRequest": {"Item": self._item(k, tid, r)}} for k, tid, r in unique.values()]
        self._map(lambda chunk: write_chunk(self.client, self.table, chunk, "card-history"), list(chunks(requests)))

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def create_dynamo_table(client, table_name: str) -> None:
    """Create the table (tests and first deployments; infra/ owns it on AWS)."""
    client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "card_key", "KeyType": "HASH"}, {"AttributeName": "ts_id", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "card_key", "AttributeType": "S"},
            {"AttributeName": "ts_id", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


def state_dir(settings, store) -> Path:
    """Where the API's SQLite state lives: settings.api_state_dir, else ``layout.local_state_dir``."""
    from fraud_detection.layout import local_state_dir

    return Path(settings.api_state_dir) if settings.api_state_dir else local_state_dir(store)


def card_history_from_settings(settings, store) -> CardHistoryStore:
    if settings.kv_backend == "dynamodb":
        import boto3
        from botocore.config import Config

        concurrency = settings.api_dynamodb_concurrency
        client = boto3.client(
            "dynamodb",
            endpoint_url=settings.aws_endpoint_url,
            region_name=settings.aws_region,
            config=Config(max_pool_connections=max(10, concurrency)),  # one connection per call in flight
        )
        return DynamoCardHistory(
            settings.card_history_table,
            client=client,
            ttl_days=settings.card_history_ttl_days,
            max_rows=settings.api_card_history_max_rows,
            concurrency=concurrency,
        )
    return SqliteCardHistory(
        state_dir(settings, store) / "card_history.sqlite",
        ttl_days=settings.card_history_ttl_days,
        max_rows=settings.api_card_history_max_rows,
    )
