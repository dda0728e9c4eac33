"""Fixtures for tracking / registry / monitoring tests: a tmp store with a SQLite MLflow store, tiny models,
and the project's local AWS emulator (moto in server mode on 127.0.0.1) for the DynamoDB prediction log."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from fraud_detection import artifacts
from fraud_detection.features import FEATURE_NAMES
from fraud_detection.runs import RunRecord, new_run_id
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore


@pytest.fixture(scope="module")
def tracked_store(tmp_path_factory) -> LocalStore:
    """One store (and MLflow SQLite DB) per test module: the first MLflow use spends seconds on migrations."""
    return LocalStore(tmp_path_factory.mktemp("store"))


@pytest.fixture
def settings() -> Settings:
    return Settings(store_uri="unused", tracking_timeout_s=3, tracking_max_retries=0)


def tiny_model(seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, len(FEATURE_NAMES)))
    y = (X[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    return LogisticRegression(max_iter=200).fit(X, y)


def make_candidate(store, *, roc_auc: float = 0.95, pr_auc: float = 0.8, promoted: bool = True, seed: int = 0):
    """Save a version the way the training job does (and publish it when promoted); returns what tracking needs."""
    model = tiny_model(seed)
    blob = artifacts.model_bytes(model)
    version = artifacts.new_version(blob)
    manifest = artifacts.Manifest(
        version=version,
        created_at=artifacts.utc_now(),
        code_version=artifacts.code_version(),
        model_type="hgb",
        training_data={
            "train": artifacts.SplitCounts(
                rows=1000, frauds=10, start="2019-01-01 00:00:00", end="2019-05-31 23:59:59"
            ),
            "validation": artifacts.SplitCounts(
                rows=200, frauds=2, start="2019-06-01 00:00:00", end="2019-06-30 23:59:59"
            ),
            "test": artifacts.SplitCounts(rows=400, frauds=4, start="2019-07-01 00:00:00", end="2019-08-31 23:59:59"),
        },
        training_sample={"rows": 1000, "frauds": 10},
        input_files=["history.csv"],
        features=artifacts.feature_specs(),
        threshold=artifacts.Threshold(value=0.5, method="max F1 on the validation period"),
        metrics={"roc_auc": roc_auc, "pr_auc": pr_auc, "precision": 0.7, "recall": 0.6},
        libraries=artifacts.library_versions(),
        model_sha256=artifacts.sha256_hex(blob),
        promotion=artifacts.Promotion(promoted=promoted, reason="test decision", decided_at=artifacts.utc_now()),
    )
    metrics = {
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "confusion_matrix": {"tp": 3, "fp": 1, "fn": 1, "tn": 395},
        "comparison": {"hgb": {"roc_auc": roc_auc, "pr_auc": pr_auc}},
    }
    artifacts.save_artifact(
        store, version=version, model_blob=blob, manifest=manifest, metrics=metrics, report_html="<html>r</html>"
    )
    if promoted:
        artifacts.publish_latest(store, manifest)
    record = RunRecord(
        run_id=new_run_id(),
        trigger="file",
        status="succeeded" if promoted else "rejected",
        started_at=artifacts.utc_now(),
        inputs=["landing/history.csv"],
        accepted_files=["history.csv"],
        quarantined_files=[],
        version=version,
        timings_s={"validate": 1.5, "fit_hgb": 3.0},
        extra={"drift": {"drift_found": False, "features": [], "report": None, "skipped": "no champion yet"}},
    )
    return {"record": record, "manifest": manifest, "metrics": metrics, "model": model, "report_html": "<html>r</html>"}


def closed_port() -> int:
    """A localhost port nothing listens on (an unreachable tracking server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


