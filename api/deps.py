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


def authorize(state, api_key: str | None) -> str:
    """The caller's key id (``state``: the app's state); 401 without a valid key, 429 past its rate limit."""
    key_id = state.key_verifier.verify(api_key)
    if key_id is None:
        state.metrics.errors.labels("unauthorized").inc()
        raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": HEADER})
    wait = state.rate_limiter.acquire(key_id)
    if wait > 0:
        state.metrics.errors.labels("rate_limited").inc()
        raise HTTPException(
            429, "rate limit exceeded for this API key", headers={"Retry-After": retry_after_header(wait)}
        )
    return key_id


async def require_api_key(request: Request, api_key: str | None = Security(api_key_header)) -> str:
    """``authorize`` as a dependency (the scoring routes call ``authorize`` themselves: see routes/score.py)."""
    return authorize(request.app.state, api_key)


async def require_metrics_access(request: Request, api_key: str | None = Security(api_key_header)) -> None:
    """/metrics: a valid API key (no rate limit), unless settings.api_metrics_public."""
    state = request.app.state
    if state.settings.api_metrics_public:
        return
    if state.key_verifier.verify(api_key) is None:
        state.metrics.errors.labels("unauthorized").inc()
        raise HTTPException(401, "missing or invalid API key", headers={"WWW-Authenticate": HEADER})
