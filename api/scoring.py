"""The scoring path: card key -> history -> features -> model -> decision; then history and log updates.

Runs on the event loop (no thread hop): every step is short (keyed hash, one indexed SQLite read, the
row feature engine, the numpy tree walk, one SQLite insert) and the prediction log is a queue append.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np

from api.fast_features import ListHistory, transaction_features
from api.model_holder import LoadedModel
from fraud_detection import features
from fraud_detection.card_history import CardHistoryStore
from fraud_detection.card_key import card_key
from fraud_detection.prediction_log import PredictionLog, PredictionRecord


class NotReady(RuntimeError):
    pass


def _trans_id(txn: dict[str, Any]) -> str:
    return txn.get("trans_num") or uuid.uuid4().hex


def _ts_text(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


class ScoringService:
    def __init__(self, holder, history: CardHistoryStore, plog: PredictionLog, hash_key: str, metrics) -> None:
        self.holder = holder
        self.history = history
        self.plog = plog
        self.hash_key = hash_key
        self.metrics = metrics
        self.remote = bool(getattr(history, "remote", False))

    def model(self) -> LoadedModel:
        lm = self.holder.current
        if lm is None:
            raise NotReady(self.holder.last_error or "no model loaded yet")
        return lm

    def _record(self, lm, request_id, txn, ck, trans_id, p, decision, latency_ms) -> PredictionRecord:
        return PredictionRecord(
            prediction_id=uuid.uuid4().hex,
            logged_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            request_id=request_id,
            trans_num=trans_id,
            card_key=ck,
            trans_time=_ts_text(txn["trans_date_trans_time"]),
            amt=float(txn["amt"]),
            model_version=lm.version,
            score=p,
            decision=decision,
            threshold=lm.threshold,
            latency_ms=latency_ms,
        )

    def score_one(self, txn: dict[str, Any], request_id: str, started: float) -> bytes:
        lm = self.model()
        ck = card_key(txn["cc_num"], self.hash_key)
        record = features.history_record(txn)
        x = transaction_features(txn, ListHistory(self.history.read(ck, record[0])))
        p = float(lm.scorer.predict_proba1(np.array([x]))[0])
        decision = p >= lm.threshold
        trans_id = _trans_id(txn)
        self.history.append(ck, trans_id, record)
        body = (
            f'{{"request_id":{json.dumps(request_id)},"trans_num":"{trans_id}","fraud_probability":{p!r},'
            f'"is_fraud":{"true" if decision else "false"},"threshold":{lm.threshold!r},"model":{lm.ref_json}}}'
        ).encode()
        latency_ms = (time.perf_counter() - started) * 1e3
        self.plog.append(self._record(lm, request_id, txn, ck, trans_id, p, decision, latency_ms))
        self._observe(lm, [p], [decision])
        return body

    def score_batch(self, txns: list[dict[str, Any]], request_id: str, started: float) -> bytes:
        """Scores in order; a transaction sees the earlier ones of its card in the same batch as history."""
        lm = self.model()
        keys = [card_key(t["cc_num"], self.hash_key) for t in txns]
        records = [features.history_record(t) for t in txns]
        ids = [_trans_id(t) for t in txns]
        by_card: dict[str, list[int]] = defaultdict(list)
        for i, ck in enumerate(keys):
            by_card[ck].append(i)
        X = np.empty((len(txns), len(features.FEATURE_NAMES)), dtype=np.float64)
        for ck, idx in by_card.items():
            # One read per card covers every transaction of the batch: the feature windows select each
            # transaction's own range, and later rows (stored or in the batch) fall outside it.
            first, last = min(records[i][0] for i in idx), max(records[i][0] for i in idx)
            known = ListHistory(self.history.read(ck, last + 1, since_ts=first - features.MAX_WINDOW_S))
            seen = set()
            for i in idx:
                X[i] = transaction_features(txns[i], known)
                if (records[i][0], ids[i]) not in seen:
                    seen.add((records[i][0], ids[i]))
                    known.insert(records[i])
        p = lm.scorer.predict_proba1(X)
        decisions = p >= lm.threshold
        self.history.append_many(list(zip(keys, ids, records, strict=True)))
        probs = p.tolist()
        dec = decisions.tolist()
        results = ",".join(
            f'{{"trans_num":"{tid}","fraud_probability":{pi!r},"is_fraud":{"true" if di else "false"},'
            f'"threshold":{lm.threshold!r}}}'
            for tid, pi, di in zip(ids, probs, dec, strict=True)
        )
        body = f'{{"request_id":{json.dumps(request_id)},"model":{lm.ref_json},"results":[{results}]}}'.encode()
        latency_ms = (time.perf_counter() - started) * 1e3
        self.plog.append_many(
            [
                self._record(lm, request_id, t, k, tid, pi, di, latency_ms)
                for t, k, tid, pi, di in zip(txns, keys, ids, probs, dec, strict=True)
            ]
        )
        self._observe(lm, probs, dec)
        return body

    def _observe(self, lm: LoadedModel, probs: list[float], decisions: list[bool]) -> None:
        m = self.metrics
        hist = m.scores.labels(lm.version)
        for p in probs:
            hist.observe(p)
        n_true = sum(decisions)
        if n_true:
            m.transactions.labels(lm.version, "fraud").inc(n_true)
        if len(decisions) - n_true:
            m.transactions.labels(lm.version, "legit").inc(len(decisions) - n_true)
