"""Model-quality metrics and the alert check.

The training job publishes the *champion's* (``models/latest.json``) held-out test ROC-AUC and PR-AUC,
and whether drift was found in this run's data:

* AWS (``s3://`` store, or ``FRAUD_METRICS_BACKEND=cloudwatch``): CloudWatch ``PutMetricData``,
  namespace ``FraudDetection``, dimension ``ModelName`` = ``settings.registered_model_name``, metrics
  ``TestRocAuc``, ``TestPrAuc`` and ``DriftFound`` (0 / 1). The stack's alarm on ``TestRocAuc`` < 0.89
  fires from it.
* embedded default: ``<store>/reports/metrics/model_quality.prom`` (Prometheus text format, e.g. for a
  node-exporter textfile collector) and ``model_quality.json`` beside it.

The live drift check (``fraud drift --live``, and the scheduled Glue job ``glue/live_drift_job.py``)
publishes its result with ``publish_live_drift``: the same ``DriftFound`` metric with the same single
dimension, so the stack's data-drift alarm fires from either check; locally ``live_drift.prom``.

``check_alerts`` is the local alarm: it fires when the champion's ROC-AUC is below
``settings.alert_min_roc_auc`` (0.89) or the newest drift report under ``reports/drift/`` found drift.
``fraud monitor`` runs it, logs every firing alert at ERROR and exits 1.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fraud_detection import artifacts, layout
from fraud_detection.storage import LocalStore, Store

log = logging.getLogger(__name__)

NAMESPACE = "FraudDetection"
DIMENSION = "ModelName"
# The metric names published below; the deployment checks compare the stack's alarms with these.
TEST_ROC_AUC = "TestRocAuc"
TEST_PR_AUC = "TestPrAuc"
DRIFT_FOUND = "DriftFound"
METRICS_PREFIX = layout.METRICS
PROM_KEY = f"{METRICS_PREFIX}/model_quality.prom"
JSON_KEY = f"{METRICS_PREFIX}/model_quality.json"
LIVE_PROM_KEY = f"{METRICS_PREFIX}/live_drift.prom"
DRIFT_PREFIX = layout.DRIFT_REPORTS


def backend(settings, store: Store) -> str:
    if settings.metrics_backend != "auto":
        return settings.metrics_backend
    return "file" if isinstance(store, LocalStore) else "cloudwatch"


def champion_quality(store: Store) -> dict[str, Any] | None:
    pointer = artifacts.read_latest(store)
    if pointer is None:
        return None
    manifest = artifacts.read_manifest(store, pointer.version)
    return {
        "model_version": manifest.version,
        "roc_auc": float(manifest.metrics["roc_auc"]),
        "pr_auc": float(manifest.metrics["pr_auc"]),
        "test_period": manifest.training_data.get("test").model_dump() if "test" in manifest.training_data else None,
    }


def _prom_escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(doc: dict[str, Any]) -> str:
    labels = f'model_name="{_prom_escape(doc["model_name"])}",model_version="{_prom_escape(doc["model_version"])}"'
    name_only = f'model_name="{_prom_escape(doc["model_name"])}"'
    lines = [
        "# HELP fraud_model_test_roc_auc Champion's ROC-AUC on its held-out test period.",
        "# TYPE fraud_model_test_roc_auc gauge",
        f"fraud_model_test_roc_auc{{{labels}}} {doc['roc_auc']}",
        "# HELP fraud_model_test_pr_auc Champion's PR-AUC (average precision) on its held-out test period.",
        "# TYPE fraud_model_test_pr_auc gauge",
        f"fraud_model_test_pr_auc{{{labels}}} {doc['pr_auc']}",
    ]
    if doc.get("drift_found") is not None:
        lines += [
            "# HELP fraud_data_drift_found 1 when the last training run found drift in the new data.",
            "# TYPE fraud_data_drift_found gauge",
            f"fraud_data_drift_found{{{name_only}}} {int(bool(doc['drift_found']))}",
        ]
    lines += [
        "# HELP fraud_model_quality_published_timestamp_seconds When these values were published.",
        "# TYPE fraud_model_quality_published_timestamp_seconds gauge",
        f"fraud_model_quality_published_timestamp_seconds{{{name_only}}} {doc['published_at_s']:.0f}",
    ]
    return "\n".join(lines) + "\n"


def _cloudwatch_client(settings, cloudwatch=None):
    if cloudwatch is not None:
        return cloudwatch
    import boto3

    return boto3.client("cloudwatch", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)


def _dimensions(settings) -> list[dict[str, str]]:
    """The one dimension of every FraudDetection metric (the stack's alarms select on exactly this)."""
    return [{"Name": DIMENSION, "Value": settings.registered_model_name}]


def render_live_prometheus(model_name: str, drift_found: bool, checked_at_s: float) -> str:
    label = f'model_name="{_prom_escape(model_name)}"'
    return (
        "# HELP fraud_live_drift_found 1 when the last live drift check (prediction log vs the champion's "
        "test period) found drift.\n"
        "# TYPE fraud_live_drift_found gauge\n"
        f"fraud_live_drift_found{{{label}}} {int(drift_found)}\n"
        "# HELP fraud_live_drift_checked_timestamp_seconds When the last live drift check ran.\n"
        "# TYPE fraud_live_drift_checked_timestamp_seconds gauge\n"
        f"fraud_live_drift_checked_timestamp_seconds{{{label}}} {checked_at_s:.0f}\n"
    )


def publish_live_drift(settings, store: Store, summary: dict[str, Any], *, cloudwatch=None) -> dict[str, Any]:
    """Publish a live drift check's ``DriftFound`` (0 / 1): CloudWatch on AWS, ``live_drift.prom`` locally."""
    found = bool(summary["drift_found"])
    if backend(settings, store) == "cloudwatch":
        datum = {
            "MetricName": DRIFT_FOUND,
            "Dimensions": _dimensions(settings),
            "Value": float(found),
            "Unit": "Count",
        }
        _cloudwatch_client(settings, cloudwatch).put_metric_data(Namespace=NAMESPACE, MetricData=[datum])
        destination = f"cloudwatch:{NAMESPACE}"
    else:
        store.write_bytes(
            LIVE_PROM_KEY, render_live_prometheus(settings.registered_model_name, found, time.time()).encode()
        )
        destination = store.uri(LIVE_PROM_KEY)
    log.log(
        logging.ERROR if found else logging.INFO,
        "live drift published",
        extra={"drift_found": found, "features": summary.get("features") or [], "destination": destination},
    )
    return {"published": True, "drift_found": found, "destination": destination}


def publish_quality_metrics(settings, store: Store, drift: dict[str, Any] | None = None, *, cloudwatch=None) -> dict:
    """Publish the champion's test ROC-AUC / PR-AUC (and DriftFound); returns what was published."""
    q = champion_quality(store)
    if q is None:
        return {"published": False, "reason": "no champion (models/latest.json) yet"}
    drift_found = None if not drift or drift.get("skipped") else bool(drift.get("drift_found"))
    doc = {
        "model_name": settings.registered_model_name,
        **q,
        "drift_found": drift_found,
        "drift_features": (drift or {}).get("features") or [],
        "published_at_s": time.time(),
        "published_at": artifacts.utc_now(),
        "min_roc_auc": settings.alert_min_roc_auc,
    }
    where = backend(settings, store)
    if where == "cloudwatch":
        cw = _cloudwatch_client(settings, cloudwatch)
        dims = _dimensions(settings)
        data = [
            {"MetricName": TEST_ROC_AUC, "Dimensions": dims, "Value": q["roc_auc"], "Unit": "None"},
            {"MetricName": TEST_PR_AUC, "Dimensions": dims, "Value": q["pr_auc"], "Unit": "None"},
        ]
        if drift_found is not None:
            data.append({"MetricName": DRIFT_FOUND, "Dimensions": dims, "Value": float(drift_found), "Unit": "Count"})
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=data)
        doc["destination"] = f"cloudwatch:{NAMESPACE}"
    else:
        store.write_bytes(PROM_KEY, render_prometheus(doc).encode())
        doc["destination"] = store.uri(PROM_KEY)
    store.write_bytes(JSON_KEY, json.dumps(doc, indent=2).encode())  # also on S3: the alert check reads it
    level = logging.ERROR if q["roc_auc"] < settings.alert_min_roc_auc else logging.INFO
    log.log(
        level,
        "model quality published",
        # 6 decimals: the log's card-number redaction takes a 16-digit fraction for one
        extra={"model_version": doc["model_version"], "destination": doc["destination"]}
        | {k: round(doc[k], 6) for k in ("roc_auc", "pr_auc")},
    )
    return {
        "published": True,
        **{k: doc[k] for k in ("model_version", "roc_auc", "pr_auc", "drift_found", "destination")},
    }


def newest_drift_report(store: Store) -> dict[str, Any] | None:
    """The newest ``reports/drift/*/report.json`` (by its created_at)."""
    newest: tuple[str, dict] | None = None
    for o in store.list(f"{DRIFT_PREFIX}/"):
        if not o.key.endswith("/report.json"):
            continue
        try:
            doc = json.loads(store.read_bytes(o.key))
        except ValueError:
            continue
        stamp = str(doc.get("created_at", ""))
        if newest is None or stamp > newest[0]:
            newest = (stamp, doc | {"key": o.key})
    return newest[1] if newest else None


@dataclass
class AlertResult:
    firing: list[str] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.firing


def check_alerts(settings, store: Store) -> AlertResult:
    """Evaluate the two alerts: champion ROC-AUC below the floor, drift found in the newest report."""
    res = AlertResult()
    q = champion_quality(store)
    if q is None:
        res.firing.append("no champion model is published (models/latest.json missing): nothing is being served")
    else:
        res.checked["champion"] = q
        if q["roc_auc"] < settings.alert_min_roc_auc:
            res.firing.append(
                f"model quality: champion {q['model_version']} test ROC-AUC {q['roc_auc']:.4f} "
                f"is below the floor {settings.alert_min_roc_auc}"
            )
    report = newest_drift_report(store)
    if report is not None:
        res.checked["drift_report"] = {
            k: report.get(k) for k in ("key", "created_at", "kind", "drift_found", "drifted_features")
        }
        if report.get("drift_found"):
            res.firing.append(
                f"data drift: {', '.join(report.get('drifted_features') or [])} drifted "
                f"({report.get('kind', 'drift')} report {report['key']}, {report.get('created_at')})"
            )
    return res
