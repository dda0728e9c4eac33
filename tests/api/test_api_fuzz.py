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


def _follows_the_cross_field_rules(body) -> bool:
    """The two rules the document states in words because JSON Schema cannot: a birth date is not after
    its transaction's date, and a batch's trans_num values differ. Schema-driven clients must follow them
    too; cases that break them are left out of the share (and counted)."""
    txns = body.get("transactions", []) if isinstance(body, dict) and "transactions" in body else [body]
    ids = [t["trans_num"].lower() for t in txns if isinstance(t, dict) and t.get("trans_num")]
    births_ok = all(t["dob"] <= t["trans_date_trans_time"][:10] for t in txns if isinstance(t, dict))
    return births_ok and len(ids) == len(set(ids))


def _positive_calls(op, api_key: str) -> tuple[list[tuple[bool, int]], list]:
    """Positive cases of one operation, called with a valid key: (follows the cross-field rules, status)
    per call, and the details of the refusals of cases that follow them."""
    from hypothesis import given
    from schemathesis import GenerationMode

    calls: list[tuple[bool, int]] = []
    refusals: list = []

    @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    def run(case):
        response = case.call(headers={"X-API-Key": api_key})
        follows = _follows_the_cross_field_rules(case.body)
        calls.append((follows, response.status_code))
        assert response.status_code < 500, (case.path, response.status_code, response.text[:500])
        if follows and response.status_code != 200:
            refusals.append(response.json()["detail"])

    run()
    return calls, refusals


def test_positive_cases_of_the_document_are_scored(fuzz_app, api_key):
    """Schema-driven clients: what the OpenAPI document says is valid gets 200 for > 95% of scoring calls
    that follow its two cross-field rules (the others get 422), and no call gets a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    for result in schema.get_all_operations():
        op = result.ok()
        if not op.path.startswith("/v1/score"):
            continue
        calls, refusals = _positive_calls(op, api_key[0])
        kept = [code for follows, code in calls if follows]
        share = kept.count(200) / len(kept)
        raw = sum(code == 200 for _, code in calls) / len(calls)
        print(
            f"{op.path}: {len(calls)} calls, {len(kept)} follow the cross-field rules, {share:.1%} of those "
            f"answered 200 ({raw:.1%} of all); refusals of those: {refusals[:3]}"
        )
        assert len(kept) >= 40 and share > 0.95, (op.path, share, refusals[:5])
        assert all(code == 422 for follows, code in calls if not follows)
