"""The scoring path: card key -> history -> features -> model -> decision; then history and log updates.

Runs on the event loop (no thread hop) with the local store: every step is short (keyed hash, one
indexed SQLite read, the row feature engine, the compiled tree walk, a buffered history append) and the
prediction log is a queue append. A batch takes one history read for all its cards and the array
feature engine (``api.batch_features``); with DynamoDB the routes run this in a worker thread.

Both return a ``Scored``: the response body, and the prediction-log append and score metrics as a
step the route runs once the response is sent (for a batch of 1,000 that step builds 1,000 log records).
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from api.batch_features import BatchHistory, base_columns, batch_features
from api.fast_features import ListHistory, transaction_features
from api.model_holder import LoadedModel
from fraud_detection import features
from fraud_detection.card_history import CardHistoryStore
from fraud_detection.card_key import card_key, stored_trans_id
from fraud_detection.prediction_log import VECTOR_DTYPE, PredictionLog, PredictionRecord


class NotReady(RuntimeError):
    pass


class Scored(NamedTuple):
    """A scoring call's response body, and what is left to do once the response is sent: append the
    predictions to the log and observe the metrics (off the request's critical path)."""

    body: bytes
    record: Callable[[], None]


def _trans_id(txn: dict[str, Any]) -> str:
    return txn.get("trans_num") or uuid.uuid4().hex


class UtcClock:
    """The time as ``datetime.now(UTC).isoformat(timespec="milliseconds")`` writes it, with the date and
    time of day formatted once per second: one per prediction-log record, at a fraction of datetime's cost
    (figures: docs/benchmarks.md, "Figures behind the code")."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")  # one attribute: read and replaced atomically

    def now_iso(self, now_ns: int | None = None) -> str:
        ns = time.time_ns() if now_ns is None else now_ns
        second = ns // 1_000_000_000
        cached, prefix = self._second
        if second != cached:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, prefix)
        return f"{prefix}.{ns // 1_000_000 % 1000:03d}+00:00"


class ScoringService:
    def __init__(self, holder, history: CardHistoryStore, plog: PredictionLog, hash_key: str, metrics) -> None:
        self.holder = holder
        self.history = history
        self.plog = plog
        self.hash_key = hash_key
        self.metrics = metrics
        self.remote = bool(getattr(history, "remote", False))
        # prediction ids: a random per-process prefix and a counter (unique without a syscall per id)
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()
        self._series: dict[str, tuple] = {}
        self._clock = UtcClock()

    def model(self) -> LoadedModel:
        lm = self.holder.current
        if lm is None:
            raise NotReady(self.holder.last_error or "no model loaded yet")
        return lm

    def _record(self, lm, request_id, logged_at, txn, ck, trans_id, p, decision, latency_ms, x) -> PredictionRecord:
        return PredictionRecord(
            f"{self._id_prefix}{next(self._ids):012x}",
            logged_at,
            request_id,
            trans_id,
            ck,
            txn["trans_date_trans_time"].isoformat(" ", "seconds"),
            txn["amt"],
            lm.version,
            p,
            decision,
            lm.threshold,
            latency_ms,
            x,
        )

    def score_one(self, txn: dict[str, Any], request_id: str, started: float) -> Scored:
        lm = self.model()
        ck = card_key(txn["cc_num"], self.hash_key)
        record = features.history_record(txn)
        x = transaction_features(txn, ListHistory(self.history.read(ck, record[0])))
        p = float(lm.scorer.predict_proba1(np.array([x]))[0])
        decision = p >= lm.threshold
        sent_id = _trans_id(txn)
        trans_id = stored_trans_id(sent_id, self.hash_key)  # what is stored; the response echoes the sender's
        self.history.append(ck, trans_id, record)
        body = (
            f'{{"request_id":{json.dumps(request_id)},"trans_num":"{sent_id}","fraud_probability":{p!r},'
            f'"is_fraud":{"true" if decision else "false"},"threshold":{lm.threshold!r},"model":{lm.ref_json}}}'
        ).encode()
        latency_ms = (time.perf_counter() - started) * 1e3

        def record() -> None:
            self.plog.append(
                self._record(lm, request_id, self._clock.now_iso(), txn, ck, trans_id, p, decision, latency_ms, x)
            )
            self._observe(lm, [p], [decision])

        return Scored(body, record)

    def score_batch(self, txns: list[dict[str, Any]], request_id: str, started: float) -> Scored:
        """Scores in order. The batch's transactions are history for each other (by time, as in training):
        a transaction sees its card's stored ones and the batch's earlier ones (each counted once)."""
        lm = self.model()
        keys = [card_key(t["cc_num"], self.hash_key) for t in txns]
        sent_ids = [_trans_id(t) for t in txns]
        ids = [stored_trans_id(i, self.hash_key) for i in sent_ids]  # stored; the response echoes sent_ids
        cols = base_columns(txns)
        categories = cols["category_idx"].astype(np.int64)
        ts = cols["ts_s"].astype(np.int64).tolist()
        records = list(zip(ts, cols["amt"].tolist(), categories.tolist(), strict=True))
        stored = self.history.read_many(list(dict.fromkeys(keys)), min(ts) - features.MAX_WINDOW_S, max(ts))
        X = batch_features(cols, BatchHistory.merge(keys, ids, records, stored, categories))
        p = lm.scorer.predict_proba1(X)
        decisions = p >= lm.threshold
        self.history.append_many(list(zip(keys, ids, records, strict=True)))
        probs = p.tolist()
        dec = decisions.tolist()
        threshold = repr(lm.threshold)
        results = ",".join(
            f'{{"trans_num":"{tid}","fraud_probability":{pi!r},"is_fraud":{"true" if di else "false"},'
            f'"threshold":{threshold}}}'
            for tid, pi, di in zip(sent_ids, probs, dec, strict=True)
        )
        body = f'{{"request_id":{json.dumps(request_id)},"model":{lm.ref_json},"results":[{results}]}}'.encode()
        latency_ms = (time.perf_counter() - started) * 1e3

        def record() -> None:
            now = self._clock.now_iso()
            # the vectors as float32 rows of one matrix: what the log stores (``encode_features``), without
            # a list of 30 floats per row
            vectors = X.astype(VECTOR_DTYPE)
            self.plog.append_many(
                [
                    self._record(lm, request_id, now, t, k, tid, pi, di, latency_ms, x)
                    for t, k, tid, pi, di, x in zip(txns, keys, ids, probs, dec, vectors, strict=True)
                ]
            )
            self._observe(lm, probs, dec)

        return Scored(body, record)

    def _observe(self, lm: LoadedModel, probs: list[float], decisions: list[bool]) -> None:
        series = self._series.get(lm.version)
        if series is None:  # labelled once per model version, not per request
            m = self.metrics
            series = (
                m.scores.labels(lm.version),
                m.transactions.labels(lm.version, "fraud"),
                m.transactions.labels(lm.version, "legit"),
            )
            self._series = {lm.version: series}
        hist, fraud, legit = series
        for p in probs:
            hist.observe(p)
        n_true = sum(decisions)
        if n_true:
            fraud.inc(n_true)
        if len(decisions) - n_true:
            legit.inc(len(decisions) - n_true)
