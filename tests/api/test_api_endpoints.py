"""Every endpoint through TestClient: score, batch, model, health, ready, metrics, docs."""

from __future__ import annotations

import numpy as np
import pytest
from api_support import to_request
from factories import row_features

from api.schemas import EXAMPLE
from fraud_detection import artifacts
from fraud_detection.features import FEATURE_NAMES


def test_score_one_answers_probability_decision_and_model(client, auth, rows, store):
    body = to_request(rows[10])
    r = client.post("/v1/score", json=body, headers=auth)
    assert r.status_code == 200, r.text
    out = r.json()
    manifest = artifacts.read_manifest(store, artifacts.read_latest(store).version)
    assert 0.0 <= out["fraud_probability"] <= 1.0
    assert out["is_fraud"] == (out["fraud_probability"] >= manifest.threshold.value)
    assert out["trans_num"] == body["trans_num"]
    assert out["model"]["version"] == manifest.version
    assert out["model"]["trained_at"] == manifest.created_at
    assert out["model"]["training_data"]["train"]["start"] == manifest.training_data["train"].start
    assert out["model"]["test_metrics"]["roc_auc"] == manifest.metrics["test"]["roc_auc"]
    assert r.headers["x-request-id"] == out["request_id"]


def test_score_equals_trained_pipeline_on_first_transaction_of_a_card(client, auth, rows, store):
    """A card's first transaction has no history: the API score must equal the pipeline's own predict_proba."""
    _, model = artifacts.load_latest(store)
    first = rows[0]
    expected = model.predict_proba(row_features([first]))[:, 1][0]
    r = client.post("/v1/score", json=to_request(first), headers=auth)
    assert abs(r.json()["fraud_probability"] - expected) <= 1e-12


def test_only_the_model_columns_are_required(client, auth, rows):
    from fraud_detection.features import INPUT_COLUMNS

    body = {k: v for k, v in to_request(rows[3]).items() if k in INPUT_COLUMNS}
    r = client.post("/v1/score", json=body, headers=auth)
    assert r.status_code == 200, r.text
    assert len(r.json()["trans_num"]) == 32  # generated when the client sends none


def test_batch_answers_in_order_like_single_calls(client, auth, rows, settings, store, tmp_path, api_key):
    from api_support import make_settings
    from fastapi.testclient import TestClient

    from api.main import create_app

    batch = [to_request(r) for r in rows[100:160]]
    r = client.post("/v1/score/batch", json={"transactions": batch}, headers=auth)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["trans_num"] for x in out["results"]] == [b["trans_num"] for b in batch]
    # the same transactions one by one on a fresh service (fresh history) give the same answers
    fresh = make_settings(store, api_key[1], api_state_dir=str(tmp_path / "fresh_state"))
    with TestClient(create_app(fresh, store)) as c2:
        singles = [c2.post("/v1/score", json=b, headers=auth).json() for b in batch]
    got = np.array([x["fraud_probability"] for x in out["results"]])
    want = np.array([s["fraud_probability"] for s in singles])
    assert np.allclose(got, want, rtol=1e-9, atol=1e-12)
    assert [x["is_fraud"] for x in out["results"]] == [s["is_fraud"] for s in singles]


def test_model_endpoint_shows_manifest_without_paths(client, auth, store):
    r = client.get("/v1/model", headers=auth)
    assert r.status_code == 200
    m = r.json()["manifest"]
    assert m["version"] == artifacts.read_latest(store).version
    assert "input_files" not in m and m["input_file_count"] == 1
    assert "should-not-leak" not in r.text and str(store.root) not in r.text
    assert [f["name"] for f in m["features"]] == list(FEATURE_NAMES) and m["model_sha256"]


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready"


def test_not_ready_without_a_model(empty_store, api_key, auth):
    from api_support import make_settings
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(make_settings(empty_store, api_key[1]), empty_store)) as c:
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["reason"] == "no model published yet"
        assert c.get("/health").status_code == 200
        r = c.post("/v1/score", json=EXAMPLE, headers=auth)
        assert r.status_code == 503
        assert c.get("/v1/model", headers=auth).status_code == 503


def test_metrics_exposes_requests_latency_errors_scores_and_model(client, auth, rows):
    client.post("/v1/score", json=to_request(rows[1]), headers=auth)
    client.post("/v1/score", json={"amt": "x"}, headers=auth)
    client.post("/v1/score", json=to_request(rows[1]))
    text = client.get("/metrics", headers=auth).text
    version = client.get("/ready").json()["model_version"]
    assert 'fraud_api_requests_total{method="POST",route="/v1/score",status="200"} 1.0' in text
    assert 'fraud_api_request_latency_seconds_bucket{le="0.005",route="/v1/score"}' in text
    assert 'fraud_api_errors_total{kind="validation"} 1.0' in text
    assert 'fraud_api_errors_total{kind="unauthorized"} 1.0' in text
    assert f'fraud_api_score_count{{model_version="{version}"}} 1.0' in text
    assert f'fraud_api_model_info{{model_type="hgb",model_version="{version}",scorer="hgb-compiled"}} 1.0' in text
    assert rows[1]["cc_num"] not in text


def test_openapi_docs_and_their_example_work(client, auth):
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    example = schema["components"]["schemas"]["Transaction"]["examples"][0]
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert client.post("/v1/score", json=example, headers=auth).status_code == 200
    batch_example = schema["components"]["schemas"]["BatchRequest"]["examples"][0]
    assert client.post("/v1/score/batch", json=batch_example, headers=auth).status_code == 200


def test_request_id_is_propagated(client):
    r = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


@pytest.mark.parametrize("rid", ["4616225647185595", "order-4616-2256-4718-5595", "x12345678"])
def test_a_request_id_like_a_card_number_is_replaced(client, auth, rid):
    """The request id goes to the logs and the prediction log: a caller's id holding a card number must not."""
    r = client.post("/v1/score", json=EXAMPLE, headers={**auth, "X-Request-ID": rid})
    assert r.status_code == 200
    assert r.headers["x-request-id"] != rid and r.json()["request_id"] == r.headers["x-request-id"]
