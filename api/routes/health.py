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
    """200 while a verified model serves: "ready", or "degraded" with a reason when the store no longer
    holds what it serves (a changed file, a missing or refused pointer). 503 until a model is loaded. The
    reason is a fixed phrase (open endpoint); the details are in the service log."""
    lm = holder.current
    problem = holder.problem
    if lm is None:
        return JSONResponse({"status": "not ready", "reason": problem or "loading"}, status_code=503)
    if problem is not None:
        return {"status": "degraded", "model_version": lm.version, "reason": problem}
    return {"status": "ready", "model_version": lm.version}
