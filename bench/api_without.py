"""The scoring API with parts of its work left out: only for ``bench/api_attribution.py``, which measures what
each part costs. Never a configuration of the service (the issue requires every part left out here).

``BENCH_API_WITHOUT`` names the parts, comma-separated:

* ``prediction_log``: records are built and counted but not queued or written;
* ``history_writes``: the scored transactions are not added to the card history (reads stay);
* ``after_response``: a single transaction's after-response step (prediction-log record, score metrics)
  is skipped.

    BENCH_API_WITHOUT=prediction_log,history_writes python -m bench.api_without --port 8001 --workers 2
"""

from __future__ import annotations

import argparse
import os

from fastapi import FastAPI

import api.main
from api.scoring import Scored, ScoringService
from api.server import run_server
from fraud_detection.card_history import WriteBehindHistory, card_history_from_settings
from fraud_detection.prediction_log import PredictionLog, PredictionRecord
from fraud_detection.settings import get_settings
from fraud_detection.storage import store_from_settings

ENV = "BENCH_API_WITHOUT"
PARTS = ("prediction_log", "history_writes", "after_response")


class _NoSink:
    def write(self, records: list[PredictionRecord]) -> None:
        pass

    def close(self) -> None:
        pass


class _UnwrittenLog(PredictionLog):
    def append(self, record: PredictionRecord) -> None:
        self.appended += 1
        self.written += 1

    def append_many(self, records: list[PredictionRecord]) -> None:
        self.appended += len(records)
        self.written += len(records)


class _UnwrittenHistory(WriteBehindHistory):
    def append_many(self, items) -> None:
        pass


def _nothing() -> None:
    pass


class _NoAfterResponse(ScoringService):
    def score_one(self, txn, request_id: str, started: float) -> Scored:
        return Scored(super().score_one(txn, request_id, started).body, _nothing)


def parts_from_env() -> set[str]:
    parts = {p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        raise ValueError(f"{ENV}: unknown part(s) {sorted(unknown)}; known: {', '.join(PARTS)}")
    return parts


def create_app() -> FastAPI:
    """The service's own ``create_app``, given the stand-ins for the parts ``BENCH_API_WITHOUT`` names."""
    parts = parts_from_env()
    settings = get_settings()
    store = store_from_settings(settings)
    kwargs = {}
    if "prediction_log" in parts:
        kwargs["prediction_log"] = _UnwrittenLog(_NoSink())
    if "history_writes" in parts:
        kwargs["history"] = _UnwrittenHistory(card_history_from_settings(settings, store))
    if "after_response" in parts:
        api.main.ScoringService = _NoAfterResponse  # this bench process only
    return api.main.create_app(settings, store, **kwargs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    parts_from_env()  # fail here, not in every worker
    settings = get_settings()
    run_server(
        "bench.api_without:create_app",
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        graceful_timeout_s=settings.api_graceful_timeout_s,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
