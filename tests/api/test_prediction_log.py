"""Prediction log: off the request path, complete after a clean shutdown, card only as a keyed hash."""

from __future__ import annotations

import math
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import httpx
from api_support import HASH_KEY, ROOT, server_env, to_request, wait_ready

from fraud_detection import prediction_log
from fraud_detection.card_key import card_key
from fraud_detection.features import FEATURE_NAMES
from fraud_detection.free_port import free_port


def _rows_in(path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT trans_num, card_key, model_version, score, decision, threshold, latency_ms FROM prediction_log"
        ).fetchall()


def test_every_scored_transaction_is_logged_with_hash_version_score_decision_latency(client, auth, rows, store):
    subset = rows[:40]
    answers = [client.post("/v1/score", json=to_request(r), headers=auth).json() for r in subset]
    answers += client.post(
        "/v1/score/batch", json={"transactions": [to_request(r) for r in rows[40:60]]}, headers=auth
    ).json()["results"]
    assert client.app.state.prediction_log.flush(10)
    logged = {r[0]: r for r in _rows_in(store.path("state/prediction_log.sqlite"))}
    assert len(logged) == 60
    version = client.get("/ready").json()["model_version"]
    for row, answer in zip(rows[:60], answers, strict=True):
        trans_num, ck, v, score, decision, threshold, latency = logged[row["trans_num"]]
        assert ck == card_key(row["cc_num"], HASH_KEY) and v == version
        assert score == answer["fraud_probability"] and bool(decision) == answer["is_fraud"]
        assert threshold == 0.5 and latency > 0
    with sqlite3.connect(store.path("state/prediction_log.sqlite")) as conn:
        extra = conn.execute("SELECT logged_at, features FROM prediction_log").fetchall()
    for logged_at, vector in extra:  # single and batch records alike: UTC time in ms, the whole vector
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", logged_at), logged_at
        assert datetime.fromisoformat(logged_at) <= datetime.now(UTC)
        values = prediction_log.decode_features(vector)
        assert values is not None and len(values) == len(FEATURE_NAMES) and all(map(math.isfinite, values))
    raw = store.path("state/prediction_log.sqlite").read_bytes()
    assert not any(r["cc_num"].encode() in raw for r in rows[:60])


class _SlowSink:
    def __init__(self) -> None:
        self.records: list = []

    def write(self, records) -> None:
        time.sleep(0.2)
        self.records.extend(records)

    def close(self) -> None:
        pass


def test_append_does_not_wait_for_the_sink_and_close_drains():
    sink = _SlowSink()
    log = prediction_log.PredictionLog(sink, batch_size=10, interval_s=0.01)
    rec = prediction_log.PredictionRecord("id", "t", "r", "n", "k", "ts", 1.0, "v", 0.1, False, 0.5, 1.0)
    t = time.perf_counter()
    for i in range(100):
        log.append(rec._replace(prediction_id=str(i)))
    assert time.perf_counter() - t < 0.1  # the sink takes 0.2 s per batch: append must not wait for it
    log.close()
    assert len(sink.records) == 100


class _FlakySink(_SlowSink):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 2

    def write(self, records) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk hiccup")
        self.records.extend(records)


def test_failed_writes_are_retried_not_dropped():
    sink = _FlakySink()
    log = prediction_log.PredictionLog(sink, interval_s=0.01)
    rec = prediction_log.PredictionRecord("id", "t", "r", "n", "k", "ts", 1.0, "v", 0.1, False, 0.5, 1.0)
    log.append(rec)
    log.close()
    assert sink.records == [rec]


def _record(i: int, logged_at: datetime) -> prediction_log.PredictionRecord:
    return prediction_log.PredictionRecord(
        f"p{i:06d}", logged_at.isoformat(timespec="milliseconds"), "r", f"{i:032x}", "k" * 64, "2019-01-01 00:00:00",
        1.0, "v", 0.1, False, 0.5, 1.0, [0.5] * len(FEATURE_NAMES),
    )  # fmt: skip


def test_the_sqlite_log_keeps_its_retention_age_and_row_cap(tmp_path):
    """A replay logs far more than live traffic in little time: the file keeps the newest max_rows rows,
    and nothing logged longer ago than ttl_days."""
    path = tmp_path / "log.sqlite"
    sink = prediction_log.SqliteSink(path, ttl_days=30, max_rows=1000, prune_interval_s=0)
    now = datetime.now(UTC)
    old = datetime(2020, 1, 1, tzinfo=UTC)
    sink.write([_record(i, old) for i in range(200)])  # logged long ago: aged out on the write
    assert _count(path) == 0
    for start in range(0, 3000, 500):  # a replay in six writes
        sink.write([_record(i, now) for i in range(start, start + 500)])
    assert _count(path) == 1000
    with sqlite3.connect(path) as conn:
        ids = [r[0] for r in conn.execute("SELECT prediction_id FROM prediction_log ORDER BY prediction_id")]
    assert ids == [f"p{i:06d}" for i in range(2000, 3000)]  # the newest
    sink.close()


def _count(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM prediction_log").fetchone()[0]


def test_sigterm_finishes_in_flight_requests_and_loses_no_prediction(settings, store, rows, api_key, tmp_path):
    """uvicorn under SIGTERM (what ECS sends): requests in flight complete, the log is drained, exit 0."""
    port = free_port()
    with open(tmp_path / "server.log", "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fraud_cli", "serve"],
            cwd=ROOT,
            env=server_env(settings, port),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc)
        ok: list[int] = []
        refused: list[tuple[int, str]] = []  # asserted below: an assert inside a thread fails no test
        stop = threading.Event()

        def client_loop(offset: int) -> None:
            with httpx.Client(base_url=base, headers={"X-API-Key": api_key[0]}, timeout=10) as c:
                for i in range(offset, len(rows), 4):
                    if stop.is_set():
                        return
                    try:
                        r = c.post("/v1/score", json=to_request(rows[i]))
                    except httpx.TransportError:
                        return  # refused after the listener closed: never answered, never scored
                    if r.status_code == 200:
                        ok.append(i)
                    else:
                        refused.append((r.status_code, r.text[:300]))

        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        stop.set()
        for th in threads:
            th.join(10)
    assert rc == 0
    assert not refused, refused[:5]  # every answered request in flight at SIGTERM was scored
    assert len(ok) > 20
    logged = _rows_in(store.path("state/prediction_log.sqlite"))
    assert len(logged) == len(ok)
    text = (tmp_path / "server.log").read_text()
    assert '"msg": "scoring API stopped"' in text and f'"predictions_logged": {len(ok)}' in text
