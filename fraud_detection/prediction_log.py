"""Append-only log of every scored transaction, written off the request path.

``PredictionLog.append`` puts a record on an in-memory queue and returns at once; one background
thread drains the queue in batches into the sink: a SQLite file under ``<store>/state/`` (embedded
default) or the DynamoDB table ``settings.prediction_log_table`` (pk ``prediction_id``, TTL
``expires_at``). ``close()`` stops taking records and returns after every queued one is written, so a
clean shutdown loses nothing. A failed write is retried with back-off rather than dropped.

A record may carry the served feature vector (``features``, in ``fraud_detection.features.FEATURE_NAMES``
order) so live drift can compare every feature; it is stored as base64 text of its float32 values
(``encode_features``), which keeps a DynamoDB item under 1 KB (one write unit). Logs written
before the column existed still read: ``SqliteSink`` adds the column to an older table, and a record
without a vector has ``features`` None.

Retention. DynamoDB items expire ``prediction_log_ttl_days`` after they were logged (TTL). The SQLite
file keeps the same age and at most ``prediction_log_max_rows`` rows, the newest: after a write, at most
every ``prune_interval_s``, older rows are deleted, so a replay or a busy year cannot fill the disk.

The card appears only as its keyed hash (``card_key``); a record holds no raw card number.
"""

from __future__ import annotations

import base64
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from fraud_detection.dynamodb_writes import write_all
from fraud_detection.sqlite_bulk import insert_many
from fraud_detection.sqlite_retry import use_wal

log = logging.getLogger("fraud_detection.prediction_log")


class PredictionRecord(NamedTuple):
    prediction_id: str
    logged_at: str  # UTC ISO-8601
    request_id: str
    trans_num: str
    card_key: str
    trans_time: str
    amt: float
    model_version: str
    score: float
    decision: bool
    threshold: float
    latency_ms: float
    features: Sequence[float] | None = None  # the served vector, FEATURE_NAMES order (None: not logged)


VECTOR_DTYPE = "<f4"  # little-endian float32: ~7 significant digits, plenty for distribution tests


def encode_features(values: Sequence[float] | None) -> str | None:
    """Feature vector -> base64 text of its float32 values (160 characters for 30 features).

    Written by the log's writer thread for every scored transaction, so it must be cheap: a fraction of
    what formatting the numbers as JSON text costs of the interpreter lock (figures:
    docs/benchmarks.md, "Figures behind the code").
    """
    if values is None:
        return None
    return base64.b64encode(np.asarray(values, dtype=VECTOR_DTYPE).tobytes()).decode("ascii")


def decode_features(text: str | None) -> list[float] | None:
    """``encode_features`` text -> floats (non-finite -> NaN); None or unreadable text -> None."""
    if not text:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    if len(raw) % 4:
        return None
    values = np.frombuffer(raw, dtype=VECTOR_DTYPE).astype(np.float64)
    values[~np.isfinite(values)] = np.nan
    return values.tolist()


def _row(record: PredictionRecord) -> tuple:
    """A record as the SQLite row it is stored as (the vector as JSON text)."""
    return (*record[:-1], encode_features(record.features))


class Sink(Protocol):
    def write(self, records: list[PredictionRecord]) -> None: ...
    def close(self) -> None: ...


class SqliteSink:
    _DDL = (
        "CREATE TABLE IF NOT EXISTS prediction_log ("
        " prediction_id TEXT PRIMARY KEY, logged_at TEXT NOT NULL, request_id TEXT, trans_num TEXT,"
        " card_key TEXT NOT NULL, trans_time TEXT, amt REAL, model_version TEXT NOT NULL, score REAL NOT NULL,"
        " decision INTEGER NOT NULL, threshold REAL NOT NULL, latency_ms REAL NOT NULL, features TEXT)"
    )
    _COLUMNS = PredictionRecord._fields
    _INSERT = f"INSERT OR IGNORE INTO prediction_log ({', '.join(_COLUMNS)}) VALUES"  # noqa: S608

    _INDEX = "CREATE INDEX IF NOT EXISTS prediction_log_logged_at ON prediction_log (logged_at)"

    def __init__(
        self,
        path: str | Path,
        *,
        ttl_days: int = 400,
        max_rows: int = 500_000,
        prune_interval_s: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.ttl_s = ttl_days * 86400
        self.max_rows = max_rows
        self.prune_interval_s = prune_interval_s
        self._pruned_at = float("-inf")
        self._conn: sqlite3.Connection | None = None
        conn = self._connect()
        conn.execute(self._DDL)
        conn.execute(self._INDEX)  # retention and the live-drift reader select by logged_at
        add_features_column(conn)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            # Opened in the writer thread on first write; check_same_thread off for the DDL in __init__.
            self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            use_wal(self._conn)  # the API's workers open the same file at start-up
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=30000")
        return self._conn

    def write(self, records: list[PredictionRecord]) -> None:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            insert_many(conn, self._INSERT, [_row(r) for r in records])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if time.monotonic() - self._pruned_at >= self.prune_interval_s:
            self.prune()

    def prune(self, now: float | None = None) -> int:
        """Delete the rows logged more than ``ttl_days`` before ``now`` (default: the clock) and all but the
        newest ``max_rows`` (by insertion). Returns how many went."""
        self._pruned_at = time.monotonic()
        cutoff = datetime.fromtimestamp((time.time() if now is None else now) - self.ttl_s, UTC).isoformat()
        conn = self._connect()
        aged = conn.execute("DELETE FROM prediction_log WHERE logged_at < ?", (cutoff,)).rowcount
        capped = conn.execute(
            "DELETE FROM prediction_log WHERE rowid <= (SELECT MAX(rowid) FROM prediction_log) - ?", (self.max_rows,)
        ).rowcount
        if aged or capped:
            log.info("prediction log pruned", extra={"older_than": cutoff, "aged_out": aged, "over_cap": capped})
        return aged + capped

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def has_features_column(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "features" for row in conn.execute("PRAGMA table_info(prediction_log)"))


def add_features_column(conn: sqlite3.Connection) -> None:
    """Migrate a prediction log written before feature vectors were logged (old rows keep NULL)."""
    if has_features_column(conn):
        return
    try:
        conn.execute("ALTER TABLE prediction_log ADD COLUMN features TEXT")
    except sqlite3.OperationalError as exc:  # another process (API worker) added it first
        if "duplicate column" not in str(exc):
            raise


class DynamoSink:
    def __init__(self, table_name: str, *, client=None, ttl_days: int = 400) -> None:
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.client = client
        self.table = table_name
        self.ttl_s = ttl_days * 86400

    @staticmethod
    def _attr(value) -> dict:
        if isinstance(value, bool):
            return {"BOOL": value}
        if isinstance(value, (int, float)):
            return {"N": repr(float(value)) if isinstance(value, float) else str(value)}
        return {"S": str(value)}

    def write(self, records: list[PredictionRecord]) -> None:
        expires = str(int(time.time()) + self.ttl_s)
        items = []
        for r in records:
            item = {k: self._attr(v) for k, v in r._asdict().items() if k != "features" and v != ""}
            if r.features is not None:
                item["features"] = {"S": encode_features(r.features)}
            item["expires_at"] = {"N": expires}
            items.append({"PutRequest": {"Item": item}})
        write_all(self.client, self.table, items, "prediction-log")

    def close(self) -> None:
        pass


def create_dynamo_table(client, table_name: str) -> None:
    client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": "prediction_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "prediction_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )


class PredictionLog:
    """Queue + one writer thread. ``append`` never blocks on I/O; ``close`` drains the queue.

    The writer wakes every ``interval_s`` and writes whatever accumulated, in batches: an append
    never wakes a thread (that would make the request path wait for the GIL), and the writer takes
    the GIL a few times a second rather than once per record.
    """

    def __init__(self, sink: Sink, *, batch_size: int = 2000, interval_s: float = 0.1) -> None:
        self.sink = sink
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._stop = threading.Event()
        self.appended = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def append(self, record: PredictionRecord) -> None:
        if self._closed:
            raise RuntimeError("prediction log is closed")
        self.appended += 1
        self._q.put(record)

    def append_many(self, records: list[PredictionRecord]) -> None:
        for r in records:
            self.append(r)

    def backlog(self) -> int:
        return self._q.qsize()

    def _drain(self) -> None:
        while True:
            batch = []
            try:
                while len(batch) < self.batch_size:
                    batch.append(self._q.get_nowait())
            except queue.Empty:
                pass
            if not batch:
                return
            self._write(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._drain()
        self._drain()  # after close(): everything appended before it

    def _write(self, batch: list[PredictionRecord]) -> None:
        delay = 0.05
        while True:
            try:
                self.sink.write(batch)
                self.written += len(batch)
                return
            except Exception:
                log.exception("prediction log write failed; retrying", extra={"records": len(batch)})
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything appended so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.written >= self.appended:
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 30.0) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("prediction log writer did not finish in time", extra={"backlog": self._q.qsize()})
        self.sink.close()


def prediction_log_from_settings(settings, store) -> PredictionLog:
    if settings.kv_backend == "dynamodb":
        import boto3

        client = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        return PredictionLog(
            DynamoSink(settings.prediction_log_table, client=client, ttl_days=settings.prediction_log_ttl_days)
        )
    from fraud_detection.card_history import state_dir

    return PredictionLog(
        SqliteSink(
            state_dir(settings, store) / "prediction_log.sqlite",
            ttl_days=settings.prediction_log_ttl_days,
            max_rows=settings.prediction_log_max_rows,
        )
    )
