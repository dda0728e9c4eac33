"""Artifact safety and hot reload: tampered files are refused, new versions swap in, corrupt ones are ignored."""

from __future__ import annotations

import json
import time

from api_support import make_settings
from factories import make_artifact
from fastapi.testclient import TestClient

from api import model_holder
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


def _metric(c, auth, series: str) -> float:
    """One series' value in /metrics (0 when absent)."""
    for line in c.get("/metrics", headers=auth).text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


def test_tampered_artifact_at_start_is_refused_then_restoring_the_file_recovers(store, api_key, auth, caplog):
    version = artifacts.read_latest(store).version
    path = store.path(artifacts.version_key(version, artifacts.MODEL_FILE))
    good = path.read_bytes()
    _tamper_model_file(store, version)
    settings = make_settings(store, api_key[1], api_reload_retry_max_s=0.2)
    with caplog.at_level("ERROR"), TestClient(create_app(settings, store)) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["reason"] == model_holder.REFUSED
        assert "sha256" not in r.text and version not in r.text  # the open answer carries no internals
        assert c.post("/v1/score", json=EXAMPLE, headers=auth).status_code == 503
        assert _metric(c, auth, 'fraud_api_model_reloads_total{result="refused"}') >= 1
        # the same pointer is tried again on a backoff: putting the file back is enough, no restart
        path.write_bytes(good)
        assert _wait_for(lambda: c.get("/ready").status_code == 200)
        assert c.get("/ready").json() == {"status": "ready", "model_version": version, "reason": None}
        assert c.post("/v1/score", json=EXAMPLE, headers=auth).status_code == 200
    assert any("sha256 mismatch" in getattr(rec, "reason", "") for rec in caplog.records)


def test_served_file_overwritten_is_reported_and_the_verified_model_keeps_serving(store, api_key, auth, caplog):
    version = artifacts.read_latest(store).version
    path = store.path(artifacts.version_key(version, artifacts.MODEL_FILE))
    good = path.read_bytes()
    with caplog.at_level("ERROR"), TestClient(create_app(make_settings(store, api_key[1]), store)) as c:
        assert c.get("/ready").json()["status"] == "ready"
        assert _metric(c, auth, "fraud_api_model_files_intact") == 1
        _tamper_model_file(store, version)
        assert _wait_for(lambda: c.get("/ready").json()["status"] == "degraded")
        r = c.get("/ready")
        assert r.status_code == 200 and r.json() == {
            "status": "degraded",
            "model_version": version,
            "reason": model_holder.FILES_CHANGED,
        }
        assert _metric(c, auth, "fraud_api_model_integrity_failures_total") == 1
        assert _metric(c, auth, "fraud_api_model_files_intact") == 0
        scored = c.post("/v1/score", json=EXAMPLE, headers=auth)
        assert scored.status_code == 200 and scored.json()["model"]["version"] == version
        time.sleep(0.3)  # several polls: reported once, not once per poll
        assert _metric(c, auth, "fraud_api_model_integrity_failures_total") == 1
        path.write_bytes(good)
        assert _wait_for(lambda: c.get("/ready").json()["status"] == "ready")
        assert _metric(c, auth, "fraud_api_model_files_intact") == 1
    errors = [rec for rec in caplog.records if rec.levelname == "ERROR" and "files changed" in rec.getMessage()]
    assert len(errors) == 1 and "model.joblib" in errors[0].changed


def test_deleted_pointer_and_pointer_to_a_missing_version_are_reported(store, api_key, auth, caplog):
    latest = store.path(artifacts.LATEST_KEY)
    pointer = latest.read_bytes()
    version = artifacts.read_latest(store).version
    settings = make_settings(store, api_key[1], api_reload_retry_max_s=0.2)
    with caplog.at_level("ERROR"), TestClient(create_app(settings, store)) as c:
        latest.unlink()
        assert _wait_for(lambda: c.get("/ready").json()["status"] == "degraded")
        assert c.get("/ready").json()["reason"] == model_holder.POINTER_MISSING
        assert c.post("/v1/score", json=EXAMPLE, headers=auth).json()["model"]["version"] == version
        assert any("pointer is gone" in rec.getMessage() for rec in caplog.records)

        missing = json.loads(pointer) | {"version": "20990101T000000000Z-00000000"}
        missing["manifest"] = artifacts.version_key(missing["version"], artifacts.MANIFEST_FILE)
        store.write_bytes(artifacts.LATEST_KEY, json.dumps(missing).encode())
        assert _wait_for(lambda: c.get("/ready").json()["reason"] == model_holder.REFUSED)
        refused = _metric(c, auth, 'fraud_api_model_reloads_total{result="refused"}')
        assert _wait_for(lambda: _metric(c, auth, 'fraud_api_model_reloads_total{result="refused"}') > refused)
        assert c.get("/ready").json()["model_version"] == version  # the old model keeps serving

        store.write_bytes(artifacts.LATEST_KEY, pointer)
        ready = {"status": "ready", "model_version": version, "reason": None}
        assert _wait_for(lambda: c.get("/ready").json() == ready)
    assert any("no manifest for version 20990101" in getattr(rec, "reason", "") for rec in caplog.records)


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
        assert _wait_for(lambda: _metric(c, auth, 'fraud_api_model_reloads_total{result="refused"}') >= 1)
        assert c.get("/ready").json()["model_version"] == v1

        refused = _metric(c, auth, 'fraud_api_model_reloads_total{result="refused"}')
        m_bad_features = m.model_copy(update={"features": list(reversed(m.features))})
        artifacts.write_manifest(store, m_bad_features)
        artifacts.publish_latest(store, m_bad_features)
        assert _wait_for(lambda: _metric(c, auth, 'fraud_api_model_reloads_total{result="refused"}') > refused)
        assert _wait_for(lambda: "expects features" in (c.app.state.holder.last_error or ""))
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
        assert _wait_for(lambda: "disagree on sha256" in (c.app.state.holder.last_error or ""))
        store.write_bytes(artifacts.LATEST_KEY, b"{not json")
        assert _wait_for(lambda: "unreadable pointer" in (c.app.state.holder.last_error or ""))
        assert c.get("/ready").json()["model_version"] == v1
