"""Quality metrics (local Prometheus file, CloudWatch via moto) and the alert path (``fraud monitor``)."""

from __future__ import annotations

import json

import pytest

from fraud_detection import monitoring
from fraud_detection.settings import Settings, get_settings
from fraud_detection.storage import LocalStore
from tests.tracking.conftest import make_candidate


@pytest.fixture
def store(tmp_path, monkeypatch) -> LocalStore:
    monkeypatch.setenv("FRAUD_STORE_URI", str(tmp_path))
    get_settings.cache_clear()
    yield LocalStore(tmp_path)
    get_settings.cache_clear()


def _monitor(capsys) -> tuple[int, str]:
    rc, out, _ = _monitor_with_log(capsys)
    return rc, out


def _monitor_with_log(capsys) -> tuple[int, str, list[dict]]:
    """Run ``fraud monitor``: its summary line and its JSON log lines both go to stderr (stdout is for
    ``--json``); returns the exit code, the summary and the log events."""
    from fraud_cli.cli import main

    rc = main(["monitor"])
    cap = capsys.readouterr()
    assert cap.out == ""
    lines = cap.err.splitlines()
    logs = [json.loads(line) for line in lines if line.startswith("{")]
    summary = "\n".join(line for line in lines if line.startswith("monitor:"))
    return rc, summary, logs


def test_local_metrics_file_holds_the_champions_numbers(store):
    cand = make_candidate(store, roc_auc=0.95, pr_auc=0.81)
    out = monitoring.publish_quality_metrics(Settings(), store, {"drift_found": False, "features": []})
    assert out["published"] and out["model_version"] == cand["manifest"].version
    prom = store.read_bytes(monitoring.PROM_KEY).decode()
    assert (
        f'fraud_model_test_roc_auc{{model_name="fraud-detection",model_version="{out["model_version"]}"}} 0.95' in prom
    )
    assert "fraud_model_test_pr_auc{" in prom and 'fraud_data_drift_found{model_name="fraud-detection"} 0' in prom
    doc = json.loads(store.read_bytes(monitoring.JSON_KEY))
    assert doc["roc_auc"] == 0.95 and doc["drift_found"] is False


def test_a_rejected_run_still_publishes_the_champion_not_the_candidate(store):
    champ = make_candidate(store, roc_auc=0.95, promoted=True)
    make_candidate(store, roc_auc=0.80, promoted=False, seed=2)
    out = monitoring.publish_quality_metrics(Settings(), store)
    assert out["model_version"] == champ["manifest"].version and out["roc_auc"] == 0.95


def test_alert_fires_on_a_model_below_the_floor(store, capsys):
    make_candidate(store, roc_auc=0.85, pr_auc=0.6)  # published below the 0.89 alert floor
    monitoring.publish_quality_metrics(Settings(), store)
    rc, out, logs = _monitor_with_log(capsys)
    assert rc == 1
    assert "ALERT" in out and "ROC-AUC 0.8500 is below the floor 0.89" in out
    assert any(e["level"] == "ERROR" and e["msg"].startswith("ALERT FIRING: model quality") for e in logs), logs


def test_no_alert_for_a_good_model_without_drift(store, capsys):
    make_candidate(store, roc_auc=0.95)
    rc, out = _monitor(capsys)
    assert rc == 0 and out.startswith("monitor: ok")


def test_alert_fires_when_the_newest_drift_report_found_drift(store, capsys):
    make_candidate(store, roc_auc=0.95)
    old = {"created_at": "2026-01-01T00:00:00Z", "kind": "training", "drift_found": True, "drifted_features": ["amt"]}
    new = {"created_at": "2026-02-01T00:00:00Z", "kind": "live", "drift_found": False, "drifted_features": []}
    store.write_bytes("reports/drift/a/report.json", json.dumps(old).encode())
    store.write_bytes("reports/drift/b/report.json", json.dumps(new).encode())
    assert _monitor(capsys)[0] == 0  # the newest report found none
    newest = new | {"created_at": "2026-03-01T00:00:00Z", "drift_found": True, "drifted_features": ["hour", "amt"]}
    store.write_bytes("reports/drift/c/report.json", json.dumps(newest).encode())
    rc, out = _monitor(capsys)
    assert rc == 1 and "data drift: hour, amt drifted" in out


@pytest.mark.aws_component("train_job")  # the training job publishes these (spark_jobs/pipeline.py)
def test_cloudwatch_metrics_match_the_stack_alarm(store):
    import boto3
    from moto import mock_aws

    make_candidate(store, roc_auc=0.87, pr_auc=0.6)
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        s = Settings(metrics_backend="cloudwatch")
        monitoring.publish_quality_metrics(s, store, {"drift_found": True, "features": ["amt"]}, cloudwatch=cw)
        metrics = cw.list_metrics(Namespace="FraudDetection")["Metrics"]
        names = {m["MetricName"] for m in metrics}
        assert names == {"TestRocAuc", "TestPrAuc", "DriftFound"}
        assert all(m["Dimensions"] == [{"Name": "ModelName", "Value": "fraud-detection"}] for m in metrics)
        data = cw.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "roc",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "FraudDetection",
                            "MetricName": "TestRocAuc",
                            "Dimensions": [{"Name": "ModelName", "Value": "fraud-detection"}],
                        },
                        "Period": 3600,
                        "Stat": "Minimum",
                    },
                }
            ],
            StartTime="2000-01-01T00:00:00Z",
            EndTime="2100-01-01T00:00:00Z",
        )
        assert data["MetricDataResults"][0]["Values"] == [0.87]
