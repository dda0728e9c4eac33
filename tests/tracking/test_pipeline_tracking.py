"""The training job with tracking: an unreachable tracking server does not stop publication (and says so);
the next run is tracked, checks drift against the champion's training period, publishes quality metrics,
and leaves the registry's aliases in agreement with latest.json."""

from __future__ import annotations

import csv
import json
import logging

import pytest

from fraud_detection import artifacts, monitoring, tracking
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore
from spark_jobs.pipeline import TrainRequest, run_training
from tests.tracking.conftest import closed_port

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _first_months(src, dest, before: str) -> None:
    with src.open() as fin, dest.open("w", newline="") as fout:
        reader, writer = csv.reader(fin), csv.writer(fout)
        header = next(reader)
        writer.writerow(header)
        ts = header.index("trans_date_trans_time")
        writer.writerows(row for row in reader if row[ts] < before)


def test_training_with_tracking_down_then_up(spark, small_history_csv, tmp_path, caplog):
    store = LocalStore(tmp_path / "store")
    early = tmp_path / "early.csv"
    _first_months(small_history_csv, early, "2019-07-01")
    base = Settings(
        store_uri=str(store.root),
        catalog_database="fraud_tracking",
        max_training_rows=30_000,
        spark_master="local[2]",
        tracking_timeout_s=3,
        tracking_max_retries=0,
    )

    # --- 1. tracking server unreachable: the model is still published, the skip is loud ----------------
    down = base.model_copy(update={"tracking_uri": f"http://127.0.0.1:{closed_port()}"})
    with caplog.at_level(logging.WARNING):
        first = run_training(spark, down, store, TrainRequest(inputs=[str(early)]))
    assert first.promoted and artifacts.read_latest(store).version == first.record.version
    assert "unreachable" in first.record.extra["tracking"]["skipped"]
    assert any(r.levelno == logging.WARNING and r.getMessage().startswith("tracking skipped:") for r in caplog.records)
    assert first.record.extra["drift"]["skipped"].startswith("no champion yet")
    saved = json.loads(store.read_bytes(f"runs/{first.record.run_id}.json"))
    assert "skipped" in saved["extra"]["tracking"]
    assert first.record.extra["quality_metrics"]["published"]  # local metrics do not need the tracking server

    # --- 2. embedded SQLite tracking: tracked, drift vs the champion's training period, aliases agree -----
    second = run_training(spark, base, store, TrainRequest(inputs=[str(small_history_csv)]))
    drift = second.record.extra["drift"]
    assert drift.get("report"), drift
    report = json.loads(store.read_bytes(drift["report"]))
    champ_train = artifacts.read_manifest(store, first.record.version).training_data["train"]
    assert report["reference"]["start"] == champ_train.start and report["reference"]["end"] == champ_train.end
    assert report["current"]["start"] >= "2019-07-01"
    assert set(drift["features"]) == set(report["drifted_features"])
    assert drift["drift_found"] == bool(drift["features"])

    tracked = second.record.extra["tracking"]
    assert tracked.get("mlflow_run_id"), tracked
    state = tracking.registry_state(base, store)
    latest = artifacts.read_latest(store).version
    if second.promoted:
        assert latest == second.record.version and state["champion"][tracking.VERSION_TAG] == latest
    else:  # rejected: challenger on it; the champion (published while tracking was down) is not registered
        assert state["challenger"][tracking.VERSION_TAG] == second.record.version
        assert latest == first.record.version and state["champion"]["model_version"] is None
    published = json.loads(store.read_bytes(monitoring.JSON_KEY))
    assert published["model_version"] == latest and published["drift_found"] == drift["drift_found"]

    # --- on demand: a file vs the champion's training data; the live reference profile of the champion ---
    from spark_jobs import drift_checks as cmd

    on_demand = cmd.files_drift(spark, base, store, [str(early)])
    assert on_demand["report"].startswith("reports/drift/ondemand-") and store.exists(on_demand["report"])
    assert on_demand["current"]["rows"] > 0
    manifest, model = artifacts.load_latest(store)
    profile = cmd.build_live_profile(spark, base, store, manifest, model)
    assert profile["format"] == cmd.PROFILE_FORMAT and set(profile["summaries"]) == set(cmd.LIVE_KINDS)
    assert profile["summaries"]["distance_km"]["n"] == manifest.training_data["test"].rows  # every feature
    assert profile["summaries"]["score"]["n"] == manifest.training_data["test"].rows
    assert sum(profile["summaries"]["hour"]["counts"]) == manifest.training_data["test"].rows
