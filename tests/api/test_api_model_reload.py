"""Artifact safety and hot reload: tampered files are refused, new versions swap in, corrupt ones are ignored."""

from __future__ import annotations

import json
import time

from api_support import make_settings
from factories import make_artifact
from fastapi.testclient import TestClient

from api.main import create_app
from api.schemas import EXAMPLE
from fraud_detection import artifacts


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _tamper_model_file(store, version: str) -> None:
    path = store.path(artifacts.version_key(version, artifacts.MODEL_FILE))
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def test_tampered_artifact_at_start_is_refused_and_service_stays_not_ready(store, api_key, auth, caplog):
    version = artifacts.read_latest(store).version
    _tamper_model_file(store, version)
    with caplog.at_level("ERROR"), TestClient(create_app(make_settings(store, api_key[1]), store)) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and "sha256 mismatch" in r.json()["reason"]
        assert c.post("/v1/score", json=EXAMPLE, headers=auth).status_code == 503
        assert 'fraud_api_model_reloads_total{result="refused"} 1.0' in c.get("/metrics", headers=auth).text
    assert any("sha256 mismatch" in getattr(rec, "reason", "") for rec in caplog.records)


def test_hot_reload_to_new_version_then_corrupt_one_keeps_serving(store, rows, api_key, auth):
    v1 = artifacts.read_latest(store).version
    with TestClient(create_app(make_settings(store, api_key[1]), store)) as c:
        assert c.post("/v1/score", json=EXAMPLE, headers=auth).json()["model"]["version"] == v1

        m2 = make_artifact(store, rows, seed=1, max_iter=30)
        assert _wait_for(lambda: c.get("/ready").json()["model_version"] == m2.version)
        assert c.post("/v1/score", json=EXAMPLE, headers=auth).json()["model"]["version"] == m2.version

        # a third version whose model file does not match its manifest: refused, v2 keeps serving
        m3 = make_artifact(store, rows, seed=2, max_iter=20, publish=False)
        _tamper_model_file(store, m3.version)
        artifacts.publish_latest(store, m3)
        assert _wait_for(lambda: 'result="refused"' in c.get("/metrics", headers=auth).text)
        assert c.get("/ready").json()["model_version"] == m2.version
        assert c.post("/v1/score", json=EXAMPLE, headers=auth).json()["model"]["version"] == m2.version

        # fixed by publishing a good version: served
        m4 = make_artifact(store, rows, seed=3, max_iter=25)
        assert _wait_for(lambda: c.get("/ready").json()["model_version"] == m4.version)


def test_incompatible_library_versions_and_wrong_features_are_refused(store, rows, api_key, auth):
    with TestClient(create_app(make_settings(store, api_key[1]), store)) as c:
        v1 = c.get("/ready").json()["model_version"]
        m = make_artifact(store, rows, seed=4, max_iter=10, publish=False)
        m_bad_lib = m.model_copy(update={"libraries": {**m.libraries, "scikit-learn": "0.24.2"}})
        artifacts.write_manifest(store, m_bad_lib)
        artifacts.publish_latest(store, m_bad_lib)
        assert _wait_for(
            lambda: 'fraud_api_model_reloads_total{result="refused"} 1.0' in c.get("/metrics", headers=auth).text
        )
        assert c.get("/ready").json()["model_version"] == v1

        m_bad_features = m.model_copy(update={"features": list(reversed(m.features))})
        artifacts.write_manifest(store, m_bad_features)
        artifacts.publish_latest(store, m_bad_features)
        assert _wait_for(
            lambda: 'fraud_api_model_reloads_total{result="refused"} 2.0' in c.get("/metrics", headers=auth).text
        )
        assert c.get("/ready").json()["model_version"] == v1


def test_pointer_disagreeing_with_manifest_is_refused(store, rows, api_key, auth):
    with TestClient(create_app(make_settings(store, api_key[1]), store)) as c:
        v1 = c.get("/ready").json()["model_version"]
        m = make_artifact(store, rows, seed=5, max_iter=10, publish=False)
        bad = {
            "version": m.version,
            "manifest": artifacts.version_key(m.version, artifacts.MANIFEST_FILE),
            "model_sha256": "0" * 64,
            "published_at": artifacts.utc_now(),
        }
        store.write_bytes(artifacts.LATEST_KEY, json.dumps(bad).encode())
        assert _wait_for(lambda: 'result="refused"' in c.get("/metrics", headers=auth).text)
        assert c.get("/ready").json()["model_version"] == v1
        store.write_bytes(artifacts.LATEST_KEY, b"{not json")
        assert _wait_for(
            lambda: 'fraud_api_model_reloads_total{result="refused"} 2.0' in c.get("/metrics", headers=auth).text
        )
        assert c.get("/ready").json()["model_version"] == v1
