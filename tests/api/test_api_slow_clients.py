"""A slow, keyless or oversized client cannot pin the API: through a real uvicorn (``python -m api``) on
127.0.0.1, with raw sockets doing what a careless or hostile client does.

The server runs with short limits (1 s header and body timeouts, an 8 KiB header cap, 3 wrong-key calls
per address) so the test is quick; the defaults are in settings.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from collections.abc import Iterator

import pytest
from api_support import distinct, make_settings, running_server, server_env

from api.schemas import EXAMPLE
from fraud_detection.free_port import free_port
from fraud_detection.storage import LocalStore

LIMITS = {
    "FRAUD_API_HEADER_TIMEOUT_S": "1",
    "FRAUD_API_BODY_TIMEOUT_S": "1",
    "FRAUD_API_MAX_HEADER_BYTES": "8192",
    "FRAUD_API_BAD_KEY_PER_S": "0.01",
    "FRAUD_API_BAD_KEY_BURST": "3",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_template, api_key) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("slow") / "store"
    shutil.copytree(model_template, root)
    settings = make_settings(LocalStore(root), api_key[1])
    port = free_port()
    with running_server(["api"], server_env(settings, port, **LIMITS), root.parent / "server.log"):
        yield "127.0.0.1", port


def _connect(server) -> socket.socket:
    s = socket.create_connection(server, timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _read_until_closed(s: socket.socket, limit_s: float = 5.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (seconds)."""
    started = time.monotonic()
    s.settimeout(limit_s)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        return data, float("inf")
    return data, time.monotonic() - started


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_a_connection_that_sends_nothing_is_closed(server):
    with _connect(server) as s:
        data, closed_after = _read_until_closed(s)
    assert data == b"" and 0.8 < closed_after < 3.0


def test_a_trickled_header_is_closed_at_its_deadline(server):
    """One byte every 0.2 s keeps uvicorn's keep-alive timer reset forever; the header deadline holds."""
    with _connect(server) as s:
        started = time.monotonic()
        closed = False
        for byte in _request("GET", "/health", {"X-Padding": "x" * 100})[:-2]:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
            if time.monotonic() - started > 4:
                break
        if not closed:
            data, _ = _read_until_closed(s, 2.0)
            closed = data == b""
    assert closed and time.monotonic() - started < 3.5


def test_an_oversized_header_gets_431_and_the_connection_closes(server):
    with _connect(server) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            for _ in range(20):  # 20 x 1 KiB header lines, never finished
                s.sendall(b"X-Filler: " + b"y" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data, closed_after = _read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 431 ") and b"8192" in data and closed_after < 1.0


def test_a_large_request_arriving_in_one_read_is_answered(server, api_key):
    """Headers and a 60 KB batch body in one write (the server reads them in one go): the header cap counts
    the headers, not the body; the whole request is answered, twice on one keep-alive connection."""
    batch = json.dumps({"transactions": distinct(EXAMPLE, 150)}).encode()
    assert len(batch) > 4 * 8192
    headers = {"X-API-Key": api_key[0], "Content-Type": "application/json", "Content-Length": str(len(batch))}
    with _connect(server) as s:
        for _ in range(2):
            s.sendall(_request("POST", "/v1/score/batch", headers, batch))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(65536)
                assert chunk, head
                head += chunk
            assert head.startswith(b"HTTP/1.1 200 "), head[:300]
            length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += s.recv(65536)
            assert len(json.loads(body)["results"]) == 150


def test_a_keyless_call_is_refused_before_its_body_is_sent(server):
    """The headers announce 1 MB; the answer and the close come before a byte of it is sent."""
    with _connect(server) as s:
        s.sendall(_request("POST", "/v1/score", {"Content-Type": "application/json", "Content-Length": "1000000"}))
        data, closed_after = _read_until_closed(s)
    head = data.split(b"\r\n\r\n")[0].lower()
    assert data.startswith(b"HTTP/1.1 401 ") and b"connection: close" in head and closed_after < 1.0


def test_a_slow_body_gets_408_and_the_connection_closes(server, api_key):
    with _connect(server) as s:
        headers = {"X-API-Key": api_key[0], "Content-Type": "application/json", "Content-Length": "1000"}
        s.sendall(_request("POST", "/v1/score", headers, b'{"amt": '))
        data, closed_after = _read_until_closed(s)
    assert data.startswith(b"HTTP/1.1 408 ") and 0.8 < closed_after < 3.0


def test_wrong_keys_are_limited_per_address_and_valid_keys_are_not(server, api_key):
    import httpx

    base = f"http://{server[0]}:{server[1]}"
    codes = []
    for _ in range(5):
        r = httpx.post(f"{base}/v1/score", json=EXAMPLE, headers={"X-API-Key": "guess"}, timeout=5)
        codes.append(r.status_code)
    k = codes.count(401)  # 3 per address in all (the keyless test above may have spent one)
    assert 2 <= k <= 3 and codes == [401] * k + [429] * (5 - k), codes
    assert int(r.headers["retry-after"]) >= 1 and r.headers["connection"] == "close"
    ok = httpx.post(f"{base}/v1/score", json=EXAMPLE, headers={"X-API-Key": api_key[0]}, timeout=5)
    assert ok.status_code == 200


def test_closed_connections_are_counted(server, api_key):
    """After the tests above (same server): both reasons counted in /metrics."""
    import httpx

    text = httpx.get(f"http://{server[0]}:{server[1]}/metrics", headers={"X-API-Key": api_key[0]}).text
    counts = {
        reason: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        for reason in ("header_timeout", "header_too_large")
        if line.startswith(f'fraud_api_connections_closed_total{{reason="{reason}"}}')
    }
    assert counts["header_timeout"] >= 2 and counts["header_too_large"] >= 1, counts


def test_a_batch_costs_one_token_per_transaction(store, api_key, auth):
    from fastapi.testclient import TestClient

    from api.main import create_app

    settings = make_settings(store, api_key[1], api_rate_limit_per_s=0.01, api_rate_limit_burst=10)
    with TestClient(create_app(settings, store)) as c:
        first = c.post("/v1/score/batch", json={"transactions": distinct(EXAMPLE, 8)}, headers=auth)
        assert first.status_code == 200  # 10 tokens -> 2
        second = c.post("/v1/score/batch", json={"transactions": distinct(EXAMPLE, 8)}, headers=auth)
        assert second.status_code == 200  # admitted with 2 left, charged 8: the key owes 6
        r = c.post("/v1/score", content=json.dumps(EXAMPLE), headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 600  # 7 tokens at 0.01/s
