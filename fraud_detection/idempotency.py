"""A small key-value store with conditional writes: SQLite here, DynamoDB on AWS (``settings.kv_backend``).

It holds the retraining state that must survive at-least-once delivery and concurrent handlers:

* idempotency records, one per S3 object version (``claim`` / ``complete`` / ``release``);
* the pending retraining request a running job leaves for its follow-up (``append`` / ``take``);
* small bookkeeping items (``put`` / ``get``).

Both backends give the same guarantees: ``claim`` is one conditional write (absent, expired, or an
abandoned in-progress lease), ``append`` and ``take`` are atomic, and items past ``expires_at`` count as
absent (DynamoDB's TTL deletes lazily, so the conditions check the time themselves).

DynamoDB item layout (table ``settings.idempotency_table``): ``id`` (S, hash key), ``expires_at`` (N, the
table's TTL attribute), ``lease_until`` (N, only while a claim is in progress), ``value`` (S, JSON) and,
for ``append`` items, the list attribute being appended to.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from fraud_detection.sqlite_retry import use_wal

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


class IdempotencyError(RuntimeError):
    pass


class AlreadyInProgress(IdempotencyError):
    """Another handler holds an unexpired claim on this key: retry later (the caller should fail)."""


@dataclass(frozen=True)
class Claim:
    """Outcome of ``claim``: ``acquired`` (go ahead) or the record that is already there."""

    acquired: bool
    status: str | None = None  # of the existing record when not acquired
    result: dict[str, Any] | None = None


class KeyValueStore(Protocol):
    def claim(self, key: str, *, lease_s: float, ttl_s: float) -> Claim: ...
    def complete(self, key: str, result: dict[str, Any], *, ttl_s: float) -> None: ...
    def release(self, key: str) -> None: ...
    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, value: dict[str, Any], *, ttl_s: float) -> None: ...
    def append(
        self, key: str, field: str, items: list[str], defaults: dict[str, Any], *, ttl_s: float
    ) -> dict[str, Any]: ...
    def take(self, key: str) -> dict[str, Any] | None: ...


# ------------------------------------------------------------------------------------------ SQLite
class SqliteStore:
    """One SQLite file; every write is one transaction (``BEGIN IMMEDIATE`` for read-modify-write)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS kv (id TEXT PRIMARY KEY, value TEXT NOT NULL, "
                "expires_at REAL NOT NULL, lease_until REAL)"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            use_wal(conn)  # not covered by the busy timeout: fails at once while another process opens the file
            self._local.conn = conn
        return conn

    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, exc, tb) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> _Tx:
        return self._Tx(self._conn())

    @staticmethod
    def _live(row, now: float) -> bool:
        return row is not None and row[1] > now

    def claim(self, key: str, *, lease_s: float, ttl_s: float) -> Claim:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT value, expires_at, lease_until FROM kv WHERE id = ?", (key,)).fetchone()
            if self._live(row, now) and not (row[2] is not None and row[2] < now):
                doc = json.loads(row[0])
                return Claim(False, doc.get("status"), doc.get("result"))
            db.execute(
                "INSERT OR REPLACE INTO kv (id, value, expires_at, lease_until) VALUES (?, ?, ?, ?)",
                (key, json.dumps({"status": IN_PROGRESS}), now + ttl_s, now + lease_s),
            )
        return Claim(True)

    def complete(self, key: str, result: dict[str, Any], *, ttl_s: float) -> None:
        self.put(key, {"status": COMPLETED, "result": result}, ttl_s=ttl_s)

    def release(self, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM kv WHERE id = ?", (key,))

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT value, expires_at FROM kv WHERE id = ?", (key,)).fetchone()
        return json.loads(row[0]) if self._live(row, time.time()) else None

    def put(self, key: str, value: dict[str, Any], *, ttl_s: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO kv (id, value, expires_at, lease_until) VALUES (?, ?, ?, NULL)",
                (key, json.dumps(value), time.time() + ttl_s),
            )

    def append(
        self, key: str, field: str, items: list[str], defaults: dict[str, Any], *, ttl_s: float
    ) -> dict[str, Any]:
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT value, expires_at FROM kv WHERE id = ?", (key,)).fetchone()
            doc = json.loads(row[0]) if self._live(row, now) else dict(defaults)
            doc[field] = [*doc.get(field, []), *items]
            db.execute(
                "INSERT OR REPLACE INTO kv (id, value, expires_at, lease_until) VALUES (?, ?, ?, NULL)",
                (key, json.dumps(doc), now + ttl_s),
            )
        return doc

    def take(self, key: str) -> dict[str, Any] | None:
        with self._tx() as db:
            row = db.execute("SELECT value, expires_at FROM kv WHERE id = ?", (key,)).fetchone()
            db.execute("DELETE FROM kv WHERE id = ?", (key,))
        return json.loads(row[0]) if self._live(row, time.time()) else None


# ---------------------------------------------------------------------------------------- DynamoDB
def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


class DynamoStore:
    """The same operations on one DynamoDB table (pk ``id``), each a single conditional / atomic call."""

    def __init__(self, table: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> None:
        import boto3

        self.table_name = table
        self.client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=region)

    def _doc(self, item: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
        if not item or float(item.get("expires_at", {}).get("N", "0")) <= now:
            return None
        from boto3.dynamodb.types import TypeDeserializer

        des = TypeDeserializer()
        doc = json.loads(item["value"]["S"]) if "value" in item else {}
        for k, v in item.items():
            if k not in ("id", "value", "expires_at", "lease_until"):
                doc[k] = _plain(des.deserialize(v))
        return doc

    def claim(self, key: str, *, lease_s: float, ttl_s: float) -> Claim:
        now = time.time()
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "id": {"S": key},
                    "value": {"S": json.dumps({"status": IN_PROGRESS})},
                    "expires_at": {"N": str(int(now + ttl_s))},
                    "lease_until": {"N": f"{now + lease_s:.3f}"},
                },
                ConditionExpression="attribute_not_exists(id) OR expires_at <= :now OR lease_until < :now",
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}},
            )
            return Claim(True)
        except self.client.exceptions.ConditionalCheckFailedException:
            doc = self.get(key) or {}
            return Claim(False, doc.get("status", IN_PROGRESS), doc.get("result"))

    def complete(self, key: str, result: dict[str, Any], *, ttl_s: float) -> None:
        self.put(key, {"status": COMPLETED, "result": result}, ttl_s=ttl_s)

    def release(self, key: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key={"id": {"S": key}})

    def get(self, key: str) -> dict[str, Any] | None:
        r = self.client.get_item(TableName=self.table_name, Key={"id": {"S": key}}, ConsistentRead=True)
        return self._doc(r.get("Item"), time.time())

    def put(self, key: str, value: dict[str, Any], *, ttl_s: float) -> None:
        self.client.put_item(
            TableName=self.table_name,
            Item={
                "id": {"S": key},
                "value": {"S": json.dumps(value)},
                "expires_at": {"N": str(int(time.time() + ttl_s))},
            },
        )

    def append(
        self, key: str, field: str, items: list[str], defaults: dict[str, Any], *, ttl_s: float
    ) -> dict[str, Any]:
        now = time.time()
        current = self.get(key)
        if current is None:
            # Create it, unless another writer did so first (then fall through to the append).
            doc = {k: v for k, v in defaults.items() if k != field}
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item={
                        "id": {"S": key},
                        "value": {"S": json.dumps(doc)},
                        "expires_at": {"N": str(int(now + ttl_s))},
                        field: {"L": [{"S": str(i)} for i in items]},
                    },
                    ConditionExpression="attribute_not_exists(id) OR expires_at <= :now",
                    ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}},
                )
                return {**doc, field: list(items)}
            except self.client.exceptions.ConditionalCheckFailedException:
                pass
        r = self.client.update_item(
            TableName=self.table_name,
            Key={"id": {"S": key}},
            UpdateExpression="SET #f = list_append(if_not_exists(#f, :empty), :items), expires_at = :exp",
            ExpressionAttributeNames={"#f": field},
            ExpressionAttributeValues={
                ":empty": {"L": []},
                ":items": {"L": [{"S": str(i)} for i in items]},
                ":exp": {"N": str(int(now + ttl_s))},
            },
            ReturnValues="ALL_NEW",
        )
        return self._doc(r["Attributes"], now) or {}

    def take(self, key: str) -> dict[str, Any] | None:
        r = self.client.delete_item(TableName=self.table_name, Key={"id": {"S": key}}, ReturnValues="ALL_OLD")
        return self._doc(r.get("Attributes"), time.time())


# -------------------------------------------------------------------------------------- selection
def state_dir(settings, store=None) -> Path:
    """``layout.local_state_dir`` of the settings' store (or of ``store``)."""
    from fraud_detection.layout import local_state_dir
    from fraud_detection.storage import store_from_settings

    return local_state_dir(store or store_from_settings(settings))


def open_kv(settings, store=None) -> KeyValueStore:
    """The key-value store the settings choose (``kv_backend``)."""
    if settings.kv_backend == "dynamodb":
        return DynamoStore(
            settings.idempotency_table, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region
        )
    return SqliteStore(state_dir(settings, store) / "retrain.sqlite")
