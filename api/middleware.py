"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

For every HTTP request: a request id (the caller's ``X-Request-ID`` if sane and free of anything like a
card number, else a new one) in the log context and the response headers; one latency observation and
one request count per route template.

A POST to one of ``direct_routes`` (the scoring routes: ``api.routes.score.build_routes``) is authorized
first (key, wrong-key allowance per client address, rate limit: ``api.deps.authorize``) from its headers
alone; only then is its body read, within ``body_timeout_s`` (408) and up to ``max_body_bytes`` (413), and
answered here by the route's handler without going through FastAPI's router; its errors are rendered by
``api.errors``, as FastAPI's exception handlers render them. A refusal before or while reading the body
closes the connection, so the unread body is never buffered. Every other request goes on to the app,
its body (no other route reads one) passed through under the same size and time bounds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Mapping

from starlette.exceptions import HTTPException

from api.auth import HEADER
from api.deps import authorize
from api.errors import render_error
from fraud_detection.logs import correlation_id, has_card_like_digits

log = logging.getLogger("api.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_KEY_HEADER = HEADER.lower().encode()
_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


class BodyTimeout(Exception):
    """The body did not arrive within ``body_timeout_s``."""


def _route_label(scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path or "unmatched"


class RequestContextMiddleware:
    def __init__(
        self,
        app,
        *,
        metrics,
        max_body_bytes: int,
        body_timeout_s: float = 15.0,
        access_log: bool = False,
        direct_routes: Mapping | None = None,
    ) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.direct = dict(direct_routes or {})
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.access_log = access_log
        # request ids: a random per-process prefix and a counter (unique without a syscall per request)
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()
        self._children: dict[tuple[str, str, int], tuple] = {}  # labelled metrics, looked up once

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = None
        declared = None
        api_key = None
        direct = self.direct.get(scope["path"]) if scope["method"] == "POST" else None
        for name, value in scope["headers"]:
            if name == _KEY_HEADER:
                if api_key is None:  # the first one, as Starlette's ``request.headers.get``
                    api_key = value.decode("latin-1")
            elif name == b"x-request-id":
                text = value.decode("latin-1")
                rid = text if _SAFE_ID.match(text) and not has_card_like_digits(text) else None
            elif name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        rid = rid or f"{self._id_prefix}{next(self._ids):012x}"
        scope.setdefault("state", {})["request_id"] = rid
        scope["state"]["started"] = started
        token = correlation_id.set(rid)
        status_holder = [500]
        rid_header = (b"x-request-id", rid.encode())
        route = None

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            if declared is not None and (declared < 0 or declared > self.max_body):
                await self._reject(send_wrapper, 413, f"request body larger than {self.max_body} bytes")
                return
            if direct is not None:
                route = scope["path"]
                status_holder[0] = await self._direct(direct, scope, receive, api_key, rid, started, send_wrapper)
                return
            if scope["method"] in ("POST", "PUT", "PATCH"):
                receive = self._bounded(receive)
            await self.app(scope, receive, send_wrapper)
        finally:
            status = status_holder[0]
            route = route or _route_label(scope)
            elapsed = time.perf_counter() - started
            counter, histogram = self._series(route, scope["method"], status)
            counter.inc()
            histogram.observe(elapsed)
            if status == 413:
                self.metrics.errors.labels("body_too_large").inc()
            if self.access_log or status >= 400:
                log.log(
                    logging.WARNING if status >= 500 else logging.INFO,
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "latency_ms": round(elapsed * 1e3, 3),
                    },
                )
            correlation_id.reset(token)

    async def _direct(self, handler, scope, receive, api_key, rid: str, started: float, send) -> int:
        """A direct route's response: authorize from the headers, then read the body, then the handler's
        JSON; or the error rendered (with ``connection: close`` when the body was not read). The status."""
        state = scope["app"].state
        after = None
        close = False
        try:
            client = scope.get("client")
            key_id = authorize(state, api_key, client[0] if client else None)
            close = True  # until the body is read, an error leaves it unread on the connection
            body = await self._read_body(receive)
            close = False
            payload, after = await handler(state, key_id, body, rid, started)
            status, extra = 200, {}
        except Exception as exc:  # noqa: BLE001 - every error becomes its response, as in FastAPI
            status, payload, extra = render_error(exc, self.metrics)
        headers = [_JSON, (b"content-length", str(len(payload)).encode())]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        if (close or status in (401, 429)) and _CLOSE not in headers:
            headers.append(_CLOSE)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        if after is not None:  # the prediction log and score metrics, once the client has its answer
            try:
                after()
            except Exception:
                log.exception("recording a scored request failed")
        return status

    def _series(self, route: str, method: str, status: int) -> tuple:
        key = (route, method, status)
        found = self._children.get(key)
        if found is None:
            found = (self.metrics.requests.labels(route, method, str(status)), self.metrics.latency.labels(route))
            if len(self._children) < 1000:  # routes are templates, so few; a bound all the same
                self._children[key] = found
        return found

    async def _read_body(self, receive) -> bytes:
        """The whole body, within ``body_timeout_s`` and ``max_body_bytes``: else HTTPException 408 / 413."""
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        break
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body:  # counted as body_too_large with the other 413s
                        raise HTTPException(413, f"request body larger than {self.max_body} bytes")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            self.metrics.errors.labels("body_timeout").inc()
            raise HTTPException(408, f"request body not received within {self.body_timeout_s:g} s") from None
        return b"".join(chunks)

    def _bounded(self, receive):
        """``receive`` for the app's other routes: past the size or time bound, the app sees a disconnect."""
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        size = 0

        async def bounded():
            nonlocal size
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                return {"type": "http.disconnect"}
            size += len(message.get("body", b""))
            return {"type": "http.disconnect"} if size > self.max_body else message

        return bounded

    @staticmethod
    async def _reject(send, status: int, detail: str) -> None:
        """An error answered before the body is read: the connection is closed with it."""
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON, (b"content-length", str(len(body)).encode()), _CLOSE],
            }
        )
        await send({"type": "http.response.body", "body": body})
