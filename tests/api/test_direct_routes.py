"""The scoring routes answered directly by the middleware give the same responses as through FastAPI.

``RequestContextMiddleware`` answers POST /v1/score and /v1/score/batch from the routes' handlers
(``api.routes.score.build_routes``) without FastAPI's router; the same routes stay in FastAPI. Each case
below is sent to an app with the direct dispatch and to one without it (the middleware given no direct
routes, so FastAPI serves them): status, headers that matter and body must be equal.
"""

from __future__ import annotations

import json

import pytest
from api_support import make_settings, to_request
from fastapi.testclient import TestClient

from api.main import create_app
from api.schemas import EXAMPLE

RID = {"X-Request-ID": "parity-test-1"}


def _app(settings, store, *, direct: bool):
    app = create_app(settings, store, poll=False)
    if not direct:
        (mw,) = [m for m in app.user_middleware if m.cls.__name__ == "RequestContextMiddleware"]
        mw.kwargs["direct_routes"] = {}
    return app


def _compare(a, b, headers=("content-type", "www-authenticate", "retry-after", "x-request-id")) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    for header in headers:
        assert a.headers.get(header) == b.headers.get(header), header
    assert a.json() == b.json()


@pytest.fixture
def pair(store, api_key, tmp_path):
    """Two clients on copies of the same state: one with the direct dispatch, one through FastAPI."""
    import shutil

    other = tmp_path / "store2"
    shutil.copytree(store.root, other)
    from fraud_detection.storage import LocalStore

    limits = {"api_rate_limit_per_s": 0.01, "api_rate_limit_burst": 5}  # 5 calls, then 429 for 100 s
    s1 = make_settings(store, api_key[1], **limits)
    s2 = make_settings(LocalStore(other), api_key[1], **limits)
    with (
        TestClient(_app(s1, store, direct=True), raise_server_exceptions=False) as direct,
        TestClient(_app(s2, LocalStore(other), direct=False), raise_server_exceptions=False) as routed,
    ):
        yield direct, routed


def _both(pair, method: str, path: str, **kwargs):
    direct, routed = pair
    return getattr(direct, method)(path, **kwargs), getattr(routed, method)(path, **kwargs)


def test_scores_and_errors_equal_on_both_paths(pair, api_key, rows):
    auth = {"X-API-Key": api_key[0], **RID}
    txns = [to_request(r) for r in rows[:5]]
    cases = [
        ("post", "/v1/score", {"json": txns[0], "headers": auth}),  # 200
        ("post", "/v1/score/batch", {"json": {"transactions": txns[1:4]}, "headers": auth}),  # 200
        ("post", "/v1/score", {"json": {**EXAMPLE, "amt": -1}, "headers": auth}),  # 422, field-level
        ("post", "/v1/score", {"content": b"{not json", "headers": auth}),  # 422
        ("post", "/v1/score/batch", {"json": {"transactions": []}, "headers": auth}),  # 422
        ("post", "/v1/score", {"json": txns[4], "headers": RID}),  # 401, no key
        ("post", "/v1/score", {"json": txns[4], "headers": {"X-API-Key": "wrong", **RID}}),  # 401
        ("get", "/v1/score", {"headers": auth}),  # 405: the route is FastAPI's for other methods
    ]
    for method, path, kwargs in cases:
        a, b = _both(pair, method, path, **kwargs)
        _compare(a, b)
    # the burst of 5 is spent by the five calls with a valid key above (the 401s and the 405 take none)
    a, b = _both(pair, "post", "/v1/score", json=txns[4], headers=auth)
    assert a.status_code == 429
    _compare(a, b)


def test_direct_path_counts_requests_by_route(pair, api_key, rows):
    direct, _ = pair
    auth = {"X-API-Key": api_key[0]}
    assert direct.post("/v1/score", json=to_request(rows[0]), headers=auth).status_code == 200
    assert direct.post("/v1/score", json={"amt": 1}, headers=auth).status_code == 422
    text = direct.get("/metrics", headers=auth).text
    assert 'fraud_api_requests_total{method="POST",route="/v1/score",status="200"} 1.0' in text
    assert 'fraud_api_requests_total{method="POST",route="/v1/score",status="422"} 1.0' in text
    assert 'fraud_api_errors_total{kind="validation"} 1.0' in text


def test_direct_path_turns_an_unexpected_error_into_500_without_details(pair, api_key, rows, monkeypatch):
    direct, routed = pair
    auth = {"X-API-Key": api_key[0], **RID}
    for client in (direct, routed):

        def broken(*args, **kwargs):
            raise RuntimeError("card 4616225647185595 exploded")  # must not reach the client

        monkeypatch.setattr(client.app.state.scoring, "score_one", broken)
    a, b = _both((direct, routed), "post", "/v1/score", json=to_request(rows[0]), headers=auth)
    assert a.status_code == 500 and a.json() == {"detail": "internal error"}
    assert "4616" not in a.text
    # through FastAPI the 500 comes from Starlette's outermost error middleware, outside the one that adds
    # the request id; the direct path keeps it
    _compare(a, b, headers=("content-type",))
    assert a.headers["x-request-id"] == RID["X-Request-ID"]


def test_openapi_still_documents_the_scoring_routes(pair):
    direct, _ = pair
    doc = json.loads(direct.get("/openapi.json").text)
    for path in ("/v1/score", "/v1/score/batch"):
        assert doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
