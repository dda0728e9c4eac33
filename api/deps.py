"""What a route needs, by ``Depends``: the metrics, the model holder, the caller's key id.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in the thread pool, a thread
hop per dependency per request (most of the per-request cost before this); these never block.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from api.auth import HEADER, retry_after_header

api_key_header = APIKeyHeader(name=HEADER, auto_error=False, description="API key (see FRAUD_API_KEYS)")


async def get_metrics(request: Request):
    return request.app.state.metrics


async def get_holder(request: Request):
    return request.app.state.holder


def check_key(state, api_key: str | None, client: str | None) -> str:
    """The key id of a valid key. A missing or wrong key gets 401, and 429 (the connection to be closed)
    once its client address has spent its allowance of wrong-key calls (``api_bad_key_per_s`` / ``_burst``):
    valid keys are never held back by that allowance, whoever shares their address."""
    key_id = state.key_verifier.verify(api_key)
    if key_id is not None:
        return key_id
    wait = state.bad_key_limiter.acquire(client or "unknown")
    if wait > 0:
        state.metrics.errors.labels("bad_key_rate_limited").inc()
        raise HTTPException(
            429,
            "too many calls without a valid API key from this address",
            headers={"Retry-After": retry_after_header(wait), "Connection": "close"},
        )
    state.metrics.errors.labels("unauthorized").inc()
    raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": HEADER})


def authorize(state, api_key: str | None, client: str | None) -> str:
    """The caller's key id (``state``: the app's state); 401 / 429 as ``check_key``, 429 past the key's
    rate limit. Called before the body is read; one token taken (a batch pays the rest once its size is
    known: ``RateLimiter.charge``)."""
    key_id = check_key(state, api_key, client)
    wait = state.rate_limiter.acquire(key_id)
    if wait > 0:
        state.metrics.errors.labels("rate_limited").inc()
        raise HTTPException(
            429, "rate limit exceeded for this API key", headers={"Retry-After": retry_after_header(wait)}
        )
    return key_id


def client_host(request: Request) -> str | None:
    return request.client.host if request.client else None


async def require_api_key(request: Request, api_key: str | None = Security(api_key_header)) -> str:
    """``authorize`` as a dependency (the scoring routes call ``authorize`` themselves: see routes/score.py)."""
    return authorize(request.app.state, api_key, client_host(request))


async def require_metrics_access(request: Request, api_key: str | None = Security(api_key_header)) -> None:
    """/metrics: a valid API key (no rate limit), unless settings.api_metrics_public."""
    state = request.app.state
    if state.settings.api_metrics_public:
        return
    check_key(state, api_key, client_host(request))
