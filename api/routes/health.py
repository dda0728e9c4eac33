"""GET /health (the process is alive) and GET /ready (a verified model is loaded); both open."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.deps import get_holder
from api.schemas import HealthResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}}, summary="Readiness")
async def ready(holder=Depends(get_holder)):
    lm = holder.current
    if lm is None:
        return JSONResponse({"status": "not ready", "reason": holder.last_error or "loading"}, status_code=503)
    return {"status": "ready", "model_version": lm.version}
