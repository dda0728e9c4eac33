"""How an error becomes a response: one renderer for FastAPI's exception handlers and the direct routes.

Every error body is ``{"detail": ...}``. A validation error lists loc / msg / type per field and never
echoes the offending input (it may hold a card number). Each error is counted once in
``fraud_api_errors_total`` by kind (401 and 429 are counted where they are raised, ``deps.authorize``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

log = logging.getLogger("api")

ERROR_KIND = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 429: "rate_limited", 503: "not_ready"}

Rendered = tuple[int, bytes, dict[str, str]]  # status, JSON body, extra headers


def _json(detail: Any) -> bytes:
    # the bytes Starlette's JSONResponse renders
    return json.dumps({"detail": detail}, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def render_validation_error(exc: RequestValidationError, metrics) -> Rendered:
    metrics.errors.labels("validation").inc()
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    return 422, _json(detail), {}


def render_http_error(exc: HTTPException, metrics) -> Rendered:
    kind = ERROR_KIND.get(exc.status_code)
    if kind and exc.status_code not in (401, 429):  # those two are counted where they are raised
        metrics.errors.labels(kind).inc()
    return exc.status_code, _json(exc.detail), dict(exc.headers or {})


def render_internal_error(exc: Exception, metrics) -> Rendered:
    metrics.errors.labels("internal").inc()
    log.error("unhandled error", exc_info=(type(exc), exc, exc.__traceback__))
    return 500, _json("internal error"), {}


# Which renderer answers which error, most specific first: FastAPI's exception handlers are registered
# from this table (``api.main``), and ``render_error`` follows it for the direct routes.
RENDERERS: tuple[tuple[type[Exception], Callable[[Any, Any], Rendered]], ...] = (
    (RequestValidationError, render_validation_error),
    (HTTPException, render_http_error),
    (Exception, render_internal_error),
)


def render_error(exc: Exception, metrics) -> Rendered:
    render = next(render for kind, render in RENDERERS if isinstance(exc, kind))  # Exception: always one
    return render(exc, metrics)
