"""The Grafana dashboard queries only metrics the API exposes, and covers what the issue asks for."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "infra" / "dashboard.json"


def _exposed() -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    from api.metrics import ApiMetrics

    m = ApiMetrics()
    m.scores.labels("v").observe(0.5)  # labelled families render their samples only once used
    m.latency.labels("/x").observe(0.01)
    m.requests.labels("/x", "GET", "200").inc()
    m.errors.labels("internal").inc()
    m.transactions.labels("v", "fraud").inc()
    m.reloads.labels("loaded").inc()
    m.set_model("v", "hgb", "sklearn")
    return {s.name for fam in text_string_to_metric_families(m.render().decode()) for s in fam.samples}


def test_dashboard_queries_only_exposed_api_metrics():
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    used = {n for e in exprs for n in re.findall(r"\bfraud_api_[a-z_]+", e)}
    missing = used - _exposed()
    assert not missing, f"dashboard uses metrics the API does not expose: {sorted(missing)}"
    for needed in ("requests_total", "latency_seconds_bucket", "errors_total", "score_bucket", "model_info"):
        assert any(needed in n for n in used), needed
    assert {p["title"] for p in doc["panels"] if p["type"] == "row"} == {
        "Traffic",
        "Latency",
        "Errors",
        "Scores and model",
    }
