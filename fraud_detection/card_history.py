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
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from fraud_detection.features import MAX_WINDOW_S

Record = tuple[int, float, int]  # (epoch seconds, amount, category index)
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

    def __init__(self, path: str | Path, *, ttl_days: int = 35, max_rows: int = 2000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_days * 86400
        self.max_rows = max_rows
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        conn = self._conn()
        _retry_busy(lambda: conn.execute(self._DDL))

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # timeout=0: a lock held by another worker process is retried here in ~50 us steps, not by
            # SQLite's busy handler, whose first sleep is a whole millisecond (a 20x latency spike).
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            _retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def read(self, card_key: str, before_ts: int, since_ts: int | None = None) -> list[Record]:
        since = before_ts - MAX_WINDOW_S if since_ts is None else since_ts
        conn = self._conn()
        rows = _retry_busy(
            lambda: conn.execute(
                "SELECT ts, amt, category_idx FROM card_history WHERE card_key = ? AND ts >= ? AND ts < ?"
                " ORDER BY ts DESC LIMIT ?",
                (card_key, since, before_ts, self.max_rows),
            ).fetchall()
        )
        return rows[::-1]

    def append(self, card_key: str, trans_id: str, record: Record) -> None:
        ts, amt, cat = record
        conn = self._conn()
        row = (card_key, int(ts), trans_id, float(amt), int(cat), int(time.time()) + self.ttl_s)
        _retry_busy(lambda: conn.execute("INSERT OR IGNORE INTO card_history VALUES (?, ?, ?, ?, ?, ?)", row))

    def append_many(self, items: list[tuple[str, str, Record]]) -> None:
        expires = int(time.time()) + self.ttl_s
        conn = self._conn()
        rows = [(k, int(r[0]), tid, float(r[1]), int(r[2]), expires) for k, tid, r in items]

        def write() -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR IGNORE INTO card_history VALUES (?, ?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        _retry_busy(write)

    def purge_expired(self, now: int | None = None) -> int:
        conn = self._conn()
        cur = _retry_busy(
            lambda: conn.execute("DELETE FROM card_history WHERE expires_at < ?", (now or int(time.time()),))
        )
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()


def _retry_busy(op, deadline_s: float = 10.0):
    """Run a SQLite operation, retrying while another process holds the write lock (short sleeps)."""
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


def _ts_id(ts: int, trans_id: str) -> str:
    if ts < 0:
        raise ValueError("transaction time before 1970 is not supported by the history store")
    return f"{ts:0{_TS_DIGITS}d}#{trans_id}"


class DynamoCardHistory:
    """The DynamoDB table: one item per (card_key, ts_id), expiring through TTL ``expires_at``."""

    remote = True  # network round trips: callers on an event loop run us in a thread

    def __init__(self, table_name: str, *, client=None, ttl_days: int = 35, max_rows: int = 2000) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.client = client
        self.table = table_name
        self.ttl_s = ttl_days * 86400
        self.max_rows = max_rows

    def read(self, card_key: str, before_ts: int, since_ts: int | None = None) -> list[Record]:
        since = before_ts - MAX_WINDOW_S if since_ts is None else since_ts
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
        records: list[Record] = []
        while len(records) < self.max_rows:
            page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                ts = int(item["ts_id"]["S"].split("#", 1)[0])
                if ts < before_ts:
                    records.append((ts, float(item["amt"]["N"]), int(item["category_idx"]["N"])))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return records[: self.max_rows][::-1]

    def _item(self, card_key: str, trans_id: str, record: Record, expires: int) -> dict:
        ts, amt, cat = record
        return {
            "card_key": {"S": card_key},
            "ts_id": {"S": _ts_id(int(ts), trans_id)},
            "amt": {"N": repr(float(amt))},
            "category_idx": {"N": str(int(cat))},
            "expires_at": {"N": str(expires)},
        }

    def append(self, card_key: str, trans_id: str, record: Record) -> None:
        self.client.put_item(
            TableName=self.table, Item=self._item(card_key, trans_id, record, int(time.time()) + self.ttl_s)
        )

    def append_many(self, items: list[tuple[str, str, Record]]) -> None:
        expires = int(time.time()) + self.ttl_s
        unique = {(k, _ts_id(int(r[0]), tid)): (k, tid, r) for k, tid, r in items}  # batch write rejects dupes
        requests = [{"PutRequest": {"Item": self._item(k, tid, r, expires)}} for k, tid, r in unique.values()]
        for i in range(0, len(requests), 25):
            pending = {self.table: requests[i : i + 25]}
            for attempt in range(8):
                resp = self.client.batch_write_item(RequestItems=pending)
                pending = resp.get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError(f"DynamoDB kept {len(pending[self.table])} card-history writes unprocessed")

    def close(self) -> None:
        pass


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
    """Where SQLite state lives: settings.api_state_dir, else <store>/state for a local store, else ./var/state."""
    from fraud_detection.storage import LocalStore

    if settings.api_state_dir:
        return Path(settings.api_state_dir)
    if isinstance(store, LocalStore):
        return store.path("state")
    return Path("var/state")


def card_history_from_settings(settings, store) -> CardHistoryStore:
    if settings.kv_backend == "dynamodb":
        import boto3

        client = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        return DynamoCardHistory(
            settings.card_history_table,
            client=client,
            ttl_days=settings.card_history_ttl_days,
            max_rows=settings.api_card_history_max_rows,
        )
    return SqliteCardHistory(
        state_dir(settings, store) / "card_history.sqlite",
        ttl_days=settings.card_history_ttl_days,
        max_rows=settings.api_card_history_max_rows,
    )
