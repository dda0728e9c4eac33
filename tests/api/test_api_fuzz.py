"""Schemathesis fuzzes the service with its own OpenAPI document: no input gives a 5xx."""

from __future__ import annotations

import itertools

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
    """Valid and invalid cases of every operation, with and without a key: no 5xx."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

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
    for op, mode in itertools.product(operations, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)):
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            for headers in ({"X-API-Key": api_key[0]}, {}):
                response = case.call(headers=headers)
                calls.append(response.status_code)
                assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])

        try:
            run()
        except Unsatisfiable:  # an operation with no parameters and no body has no invalid case
            assert mode == GenerationMode.NEGATIVE and op.method.upper() == "GET", op.path
    assert len(calls) > 200
    assert {200, 401, 422} <= set(calls), sorted(set(calls))


def _positive_calls(op, api_key: str) -> tuple[list[int], list]:
    """Statuses of an operation's positive cases, called with a valid key, and the refusals' details."""
    from hypothesis import given
    from schemathesis import GenerationMode

    calls: list[int] = []
    refusals: list = []

    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    def run(case):
        response = case.call(headers={"X-API-Key": api_key})
        calls.append(response.status_code)
        assert response.status_code < 500, (case.path, response.status_code, response.text[:500])
        if response.status_code != 200:
            refusals.append(response.json()["detail"])

    run()
    return calls, refusals


def test_positive_cases_of_the_document_are_scored(fuzz_app, api_key):
    """Schema-driven clients: what the OpenAPI document says is valid gets 200 for > 95% of the scoring
    calls, and no call gets a 5xx. The refusals left are batches that repeat a trans_num (422), the one
    rule JSON Schema cannot state; the document states it in words."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    for result in schema.get_all_operations():
        op = result.ok()
        if not op.path.startswith("/v1/score"):
            continue
        calls, refusals = _positive_calls(op, api_key[0])
        share = calls.count(200) / len(calls)
        print(f"{op.path}: {len(calls)} positive calls, {share:.1%} answered 200; refusals: {refusals[:3]}")
        assert len(calls) >= 100 and share > 0.95, (op.path, share, refusals[:5])
        assert all(e["type"] == "duplicate_trans_num" for detail in refusals for e in detail), refusals[:5]
