"""Every error class: a 4xx with a field-level message, never a 5xx; auth and rate limit."""

from __future__ import annotations

import json

import pytest
from api_support import distinct, make_settings, to_request

from api.schemas import EXAMPLE


def _post(client, body, auth, path="/v1/score"):
    return client.post(path, json=body, headers=auth)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amt": "12.5"}, "amt"),  # wrong type: number as string
        ({"amt": True}, "amt"),
        ({"city_pop": 12.5}, "city_pop"),
        ({"cc_num": "4616-2256"}, "cc_num"),
        ({"cc_num": 12}, "cc_num"),
        ({"trans_date_trans_time": "yesterday"}, "trans_date_trans_time"),
        ({"trans_date_trans_time": "2019-01-12T20:29:13+02:00"}, "trans_date_trans_time"),
        ({"trans_date_trans_time": "1900-01-01 00:00:00"}, "trans_date_trans_time"),
        ({"dob": "1986-13-45"}, "dob"),
        ({"amt": 0}, "amt"),  # out of range: amt > 0
        ({"amt": -3.0}, "amt"),
        ({"amt": 1e7}, "amt"),
        ({"lat": 91.0}, "lat"),
        ({"merch_long": -180.5}, "merch_long"),
        ({"city_pop": -1}, "city_pop"),
        ({"category": "casino"}, "category"),  # unknown category
        ({"gender": "X"}, "gender"),
        ({"state": "ny"}, "state"),
        ({"trans_num": "not-hex"}, "trans_num"),
        ({"surprise": 1}, "surprise"),  # unknown field
        ({"is_fraud": 2}, "is_fraud"),
        # a float card number would be rounded to another card's: refused, as is an exponent
        ({"cc_num": 4000323412349873.9}, "cc_num"),
        ({"cc_num": 4616225647185595.0}, "cc_num"),
        ({"cc_num": 4.616225647185595e15}, "cc_num"),
        ({"cc_num": 10**19}, "cc_num"),  # 20 digits
        ({"trans_date_trans_time": 1547324953}, "trans_date_trans_time"),  # a number, not a local time
        ({"trans_date_trans_time": "2019-02-29 10:00:00"}, "trans_date_trans_time"),
        ({"dob": "2019-01-13"}, "dob"),  # born the day after the transaction
        ({"dob": "2015-01-01"}, "dob"),  # born on the first day the service scores
        ({"dob": "1899-12-31"}, "dob"),
        ({"city_pop": "4392"}, "city_pop"),
        ({"zip": 100000}, "zip"),
    ],
)
def test_invalid_fields_get_422_naming_the_field(client, auth, change, field):
    r = _post(client, {**EXAMPLE, **change}, auth)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(field in loc for loc in locs), locs
    assert all(e["msg"] for e in r.json()["detail"])


@pytest.mark.parametrize("field", ["amt", "lat", "category", "trans_date_trans_time", "cc_num", "dob"])
def test_missing_required_field_gets_422(client, auth, field):
    body = {k: v for k, v in EXAMPLE.items() if k != field}
    r = _post(client, body, auth)
    assert r.status_code == 422 and any(field in e["loc"] for e in r.json()["detail"])


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_get_422(client, auth, token):
    raw = json.dumps(EXAMPLE).replace('"amt": 2.65', f'"amt": {token}')
    assert token in raw
    r = client.post("/v1/score", content=raw, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422 and any("amt" in e["loc"] for e in r.json()["detail"])


def test_malformed_json_and_wrong_shapes_get_4xx(client, auth):
    r = client.post("/v1/score", content=b'{"amt": ', headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert _post(client, [EXAMPLE], auth).status_code == 422
    assert _post(client, {"transactions": EXAMPLE}, auth, "/v1/score/batch").status_code == 422
    assert _post(client, {"transactions": []}, auth, "/v1/score/batch").status_code == 422


@pytest.mark.parametrize(
    "change",
    [
        {"cc_num": 4616225647185595},  # an exact JSON integer
        {"cc_num": 4616225647185595123},  # 19 digits: beyond a 64-bit float's exact range, still exact
        {"city_pop": 137.0},  # JSON Schema's integer: a number with no fraction
        {"trans_date_trans_time": "2019-01-12T20:29:13.25"},
        {"trans_date_trans_time": "2020-02-29 00:00:00"},
        {"trans_date_trans_time": "2015-01-01 00:00:00"},
        {"dob": "2014-12-31"},  # born the day before the first day the service scores
    ],
)
def test_what_the_document_allows_is_accepted(client, auth, change):
    r = _post(client, {**EXAMPLE, **change}, auth)
    assert r.status_code == 200, r.text


def test_messages_say_what_is_wrong(client, auth):
    detail = _post(client, {**EXAMPLE, "cc_num": 4000323412349873.9}, auth).json()["detail"]
    assert "fraction or an exponent" in detail[0]["msg"] and "4000323412349873" not in json.dumps(detail)
    detail = _post(client, {**EXAMPLE, "trans_date_trans_time": 1547324953}, auth).json()["detail"]
    assert "without a time zone" in detail[0]["msg"] and "timezone info" not in detail[0]["msg"]
    detail = _post(client, {**EXAMPLE, "dob": "2020-01-01"}, auth).json()["detail"]  # after the transaction
    assert [(e["loc"], e["type"]) for e in detail] == [(["body", "dob"], "birth_date")]
    assert "born before that day" in detail[0]["msg"] and "2014-12-31" in detail[0]["msg"]


def test_duplicate_trans_num_in_a_batch_gets_422(client, auth):
    batch = distinct(EXAMPLE, 3)
    batch[2]["trans_num"] = batch[0]["trans_num"].upper()  # the same id, whatever its case
    r = _post(client, {"transactions": batch}, auth, "/v1/score/batch")
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == [
        {
            "loc": ["body", "transactions", 2, "trans_num"],
            "msg": "trans_num repeats transaction 0 of this batch: each must be unique",
            "type": "duplicate_trans_num",
        }
    ]
    assert _post(client, {"transactions": distinct(EXAMPLE, 3)}, auth, "/v1/score/batch").status_code == 200


def test_no_redirect_is_built_from_the_host_header(client, auth):
    for method, path in (("post", "/v1/score/"), ("get", "/health/"), ("get", "/ready/")):
        r = getattr(client, method)(path, headers={**auth, "Host": "evil.example"}, follow_redirects=False)
        assert r.status_code == 404 and "location" not in r.headers, (path, r.status_code, r.headers)


def test_card_number_is_not_echoed_in_errors(client, auth):
    r = _post(client, {**EXAMPLE, "amt": -1.0}, auth)
    assert r.status_code == 422 and EXAMPLE["cc_num"] not in r.text


def test_oversized_body_gets_413(store, api_key, auth):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(make_settings(store, api_key[1], api_max_body_bytes=4096), store)) as c:
        big = {**EXAMPLE, "merchant": "m" * 100}
        r = c.post("/v1/score/batch", json={"transactions": [big] * 40}, headers=auth)
        assert r.status_code == 413 and "4096" in r.json()["detail"]

        def chunks():  # no Content-Length: the limit holds for streamed bodies too
            for _ in range(10):
                yield b" " * 1000

        r = c.post("/v1/score", content=chunks(), headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 413
        assert 'fraud_api_errors_total{kind="body_too_large"} 2.0' in c.get("/metrics", headers=auth).text


def test_oversized_batch_gets_422(store, api_key, auth):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(make_settings(store, api_key[1], api_max_batch=5), store)) as c:
        ok = c.post("/v1/score/batch", json={"transactions": distinct(EXAMPLE, 5)}, headers=auth)
        assert ok.status_code == 200
        r = c.post("/v1/score/batch", json={"transactions": distinct(EXAMPLE, 6)}, headers=auth)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "transactions"]


def test_invalid_item_in_batch_is_located(client, auth, rows):
    batch = [to_request(r) for r in rows[:3]]
    batch[2]["category"] = "casino"
    r = _post(client, {"transactions": batch}, auth, "/v1/score/batch")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "transactions", 2, "category"]


def test_unknown_route_and_method(client, auth):
    assert client.get("/v2/nothing").status_code == 404
    assert client.get("/v1/score", headers=auth).status_code == 405


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer x"}])
def test_scoring_and_model_need_a_valid_key(client, headers):
    for method, path, body in (("post", "/v1/score", EXAMPLE), ("get", "/v1/model", None), ("get", "/metrics", None)):
        r = getattr(client, method)(path, headers=headers, **({"json": body} if body else {}))
        assert r.status_code == 401 and r.headers["www-authenticate"] == "X-API-Key"


def test_second_configured_key_works_and_health_is_open(store, api_key):
    from fastapi.testclient import TestClient

    from api.auth import new_api_key
    from api.main import create_app

    other_key, other_entry = new_api_key("other")
    settings = make_settings(store, f"{api_key[1]},{other_entry}")
    with TestClient(create_app(settings, store)) as c:
        assert c.post("/v1/score", json=EXAMPLE, headers={"X-API-Key": other_key}).status_code == 200
        assert c.post("/v1/score", json=EXAMPLE, headers={"X-API-Key": api_key[0]}).status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200


def test_rate_limit_per_key_gives_429_then_recovers(store, api_key, auth):
    import time

    from fastapi.testclient import TestClient

    from api.auth import new_api_key
    from api.main import create_app

    other_key, other_entry = new_api_key("other")
    settings = make_settings(store, f"{api_key[1]},{other_entry}", api_rate_limit_per_s=5, api_rate_limit_burst=3)
    with TestClient(create_app(settings, store)) as c:
        codes = [c.post("/v1/score", json=EXAMPLE, headers=auth).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        r = c.post("/v1/score", json=EXAMPLE, headers=auth)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # another key has its own bucket
        assert c.post("/v1/score", json=EXAMPLE, headers={"X-API-Key": other_key}).status_code == 200
        time.sleep(0.5)
        assert c.post("/v1/score", json=EXAMPLE, headers=auth).status_code == 200
        assert 'fraud_api_errors_total{kind="rate_limited"}' in c.get("/metrics", headers=auth).text


def test_key_entries_are_salted_hashes_and_bad_config_is_rejected():
    from api.auth import KeyConfigError, KeyVerifier, new_api_key, parse_entries

    key, entry = new_api_key("a")
    key2, entry2 = new_api_key("a")
    assert key not in entry and entry.split(":")[1] != entry2.split(":")[1]
    v = KeyVerifier(parse_entries(f"{entry}, {entry2}"))
    assert v.verify(key) == "a" and v.verify(key2) == "a" and v.verify(key + "x") is None and v.verify(None) is None
    for bad in ("a:b", "a:zz:00", "a:00:abcd"):
        with pytest.raises(KeyConfigError):
            parse_entries(bad)


def test_metrics_can_be_made_public_for_an_in_vpc_scraper(store, api_key):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(make_settings(store, api_key[1], api_metrics_public=True), store)) as c:
        assert c.get("/metrics").status_code == 200
