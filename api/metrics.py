"""Prometheus metrics of one service instance (its own registry, so several apps can live in one process).

With several uvicorn workers each worker keeps its own counters; a scrape reaches one worker. On ECS run
one worker per task (scale with tasks) or aggregate by the ``pid`` in ``fraud_api_process_info``.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fraud_api_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "fraud_api_request_latency_seconds",
            "Request latency inside the service, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("fraud_api_errors", "Errors by kind.", ["kind"], registry=r)
        self.scores = Histogram(
            "fraud_api_score",
            "Fraud probability of scored transactions.",
            ["model_version"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.transactions = Counter(
            "fraud_api_transactions_scored",
            "Transactions scored, by model and decision.",
            ["model_version", "decision"],
            registry=r,
        )
        self.model_info = Gauge(
            "fraud_api_model_info",
            "1 for the model being served.",
            ["model_version", "model_type", "scorer"],
            registry=r,
        )
        self.reloads = Counter("fraud_api_model_reloads", "Model load attempts by result.", ["result"], registry=r)
        self.integrity_failures = Counter(
            "fraud_api_model_integrity_failures",
            "Times the served model's files were found changed in the store (the verified copy keeps serving).",
            registry=r,
        )
        self.files_intact = Gauge(
            "fraud_api_model_files_intact", "1 while the served model's files match what was verified.", registry=r
        )
        self.log_backlog = Gauge("fraud_api_prediction_log_backlog", "Predictions not yet written.", registry=r)
        Gauge("fraud_api_process_info", "Worker process.", ["pid"], registry=r).labels(str(os.getpid())).set(1)
        r.register(_ConnectionsClosed())

    def set_model(self, version: str, model_type: str, scorer: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version, model_type, scorer).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ConnectionsClosed:
    """Connections this worker's HTTP protocol closed before their headers were complete, by reason
    (``api.http_protocol``: counted there, outside any app, so read at scrape time)."""

    def collect(self):
        from api.http_protocol import BoundedHttpToolsProtocol as P

        family = CounterMetricFamily(
            "fraud_api_connections_closed", "Connections closed before their headers were complete.", labels=["reason"]
        )
        family.add_metric(["header_timeout"], P.closed_slow_headers)
        family.add_metric(["header_too_large"], P.closed_large_headers)
        yield family
