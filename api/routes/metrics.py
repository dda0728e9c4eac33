"""GET /metrics: Prometheus text (needs an API key unless FRAUD_API_METRICS_PUBLIC)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from api.deps import get_metrics, require_metrics_access

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={401: {}})
async def metrics(request: Request, m=Depends(get_metrics), _auth=Depends(require_metrics_access)) -> Response:
    m.log_backlog.set(request.app.state.prediction_log.backlog())
    return Response(m.render(), media_type=m.content_type)
