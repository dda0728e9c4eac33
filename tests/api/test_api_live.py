"""Through a real uvicorn on 127.0.0.1 (``fraud serve`` in a subprocess): endpoints, errors, and two model
swaps under load with zero failed requests."""

from __future__ import annotations

import threading
import time

import httpx
from api_support import to_request
from factories import make_artifact

from api.schemas import EXAMPLE


def test_every_endpoint_over_real_http(live_server, api_key, rows):
    base, _ = live_server
    auth = {"X-API-Key": api_key[0]}
    with httpx.Client(base_url=base, timeout=10) as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/ready").status_code == 200
        assert c.post("/v1/score", json=to_request(rows[0]), headers=auth).status_code == 200
        r = c.post("/v1/score/batch", json={"transactions": [to_request(x) for x in rows[1:6]]}, headers=auth)
        assert r.status_code == 200 and len(r.json()["results"]) == 5
        assert c.get("/v1/model", headers=auth).status_code == 200
        assert c.get("/docs").status_code == 200 and c.get("/openapi.json").status_code == 200
        assert c.post("/v1/score", json=EXAMPLE).status_code == 401
        assert c.post("/v1/score", json={**EXAMPLE, "category": "casino"}, headers=auth).status_code == 422
        big = b"[" + b" " * 3_000_000 + b"]"
        assert c.post("/v1/score", content=big, headers={**auth, "Content-Type": "application/json"}).status_code == 413
        text = c.get("/metrics", headers=auth).text
        assert 'route="/v1/score",status="200"' in text and "fraud_api_model_info" in text


def test_two_model_swaps_under_load_fail_no_request(live_server, api_key, rows, store):
    base, proc = live_server
    results: list[tuple[int, str | None]] = []
    stop = threading.Event()
    deadline = time.monotonic() + 60  # bounded in time as well as in count

    def worker(offset: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": api_key[0]}, timeout=10) as c:
            for i in range(offset, 20_000, 4):
                if stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    r = c.post("/v1/score", json=to_request(rows[i % len(rows)]))
                    version = r.json()["model"]["version"] if r.status_code == 200 else None
                    results.append((r.status_code, version))
                except httpx.HTTPError as exc:
                    results.append((-1, repr(exc)))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    time.sleep(1.0)
    m2 = make_artifact(store, rows, seed=11, max_iter=40)
    t_wait = time.monotonic() + 20
    while time.monotonic() < t_wait and not any(v == m2.version for _, v in results[-50:]):
        time.sleep(0.05)
    m3 = make_artifact(store, rows, seed=12, max_iter=45)
    t_wait = time.monotonic() + 20
    while time.monotonic() < t_wait and not any(v == m3.version for _, v in results[-50:]):
        time.sleep(0.05)
    time.sleep(0.5)
    stop.set()
    for th in threads:
        th.join(30)
    failures = [r for r in results if r[0] != 200]
    versions = [v for _, v in results]
    assert not failures, failures[:5]
    assert len(results) > 100
    assert m2.version in versions and m3.version in versions
    assert versions[-1] == m3.version
    assert proc.poll() is None
