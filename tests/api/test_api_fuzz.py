"""Schemathesis fuzzes the service with its own OpenAPI document: no input gives a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from api_support import make_settings
from hypothesis import HealthCheck, settings

from api.main import create_app


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, model_template, api_key):
    import shutil

    from fastapi.testclient import TestClient

    from fraud_detection.storage import LocalStore

    root = tmp_path_factory.mktemp("fuzz") / "store"
    shutil.copytree(model_template, root)
    store = LocalStore(root)
    app = create_app(make_settings(store, api_key[1], api_max_batch=50), store)
    with TestClient(app):  # runs start-up (model load, stores) for the whole module
        yield app


def test_no_server_errors(fuzz_app, api_key):
    from hypothesis import given

    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/score",
        "POST /v1/score/batch",
        "GET /v1/model",
        "GET /health",
        "GET /ready",
        "GET /metrics",
    }
    calls = []
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            for headers in ({"X-API-Key": api_key[0]}, {}):
                response = case.call(headers=headers)
                calls.append(response.status_code)
                assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])

        run()
    assert len(calls) > 200
    assert {200, 401, 422} <= set(calls), sorted(set(calls))
