"""The artifact contract: sha256 verification, library check, atomic latest pointer."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from sklearn.dummy import DummyClassifier

from fraud_detection import artifacts
from fraud_detection.features import FEATURES
from fraud_detection.storage import LocalStore


def _manifest(blob: bytes, version: str) -> artifacts.Manifest:
    return artifacts.Manifest(
        version=version,
        created_at=artifacts.utc_now(),
        code_version="test",
        model_type="dummy",
        training_data={"train": artifacts.SplitCounts(rows=10, frauds=1)},
        features=[artifacts.FeatureSpec(name=f.name, kind=f.kind) for f in FEATURES],
        threshold=artifacts.Threshold(value=0.5, method="fixed"),
        metrics={"pr_auc": 0.5},
        libraries=artifacts.library_versions(),
        model_sha256=artifacts.sha256_hex(blob),
    )


@pytest.fixture()
def saved(tmp_path):
    store = LocalStore(tmp_path)
    model = DummyClassifier(strategy="prior").fit([[0], [1]], [0, 1])
    blob = artifacts.model_bytes(model)
    version = artifacts.new_version(blob)
    m = _manifest(blob, version)
    artifacts.save_artifact(store, version=version, model_blob=blob, manifest=m, metrics={}, report_html="<html/>")
    return store, m


def test_roundtrip_and_latest(saved):
    store, m = saved
    assert artifacts.read_latest(store) is None
    artifacts.publish_latest(store, m)
    manifest, model = artifacts.load_latest(store)
    assert manifest.version == m.version and model.predict_proba([[0]]).shape == (1, 2)
    assert json.loads(store.read_bytes(artifacts.LATEST_KEY))["version"] == m.version
    assert [p.name for p in store.path("models").iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_tampered_model_is_refused(saved):
    store, m = saved
    path = store.path(f"models/{m.version}/model.joblib")
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(artifacts.ArtifactError, match="sha256 mismatch"):
        artifacts.load_model(store, m.version)


def test_incompatible_library_is_refused(saved):
    store, m = saved
    m.libraries["scikit-learn"] = "0.24.2"
    artifacts.write_manifest(store, m)
    with pytest.raises(artifacts.ArtifactError, match="scikit-learn 0.24.2"):
        artifacts.load_model(store, m.version)


def test_versions_sort_by_time():
    from datetime import datetime

    a = artifacts.new_version(b"a", datetime(2026, 1, 1, tzinfo=UTC))
    b = artifacts.new_version(b"a", datetime(2026, 1, 2, tzinfo=UTC))
    assert a < b
