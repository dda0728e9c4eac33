"""GET /v1/model: the manifest of the model being served (no paths, no secrets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from api.deps import get_holder, require_api_key
from api.model_holder import public_manifest

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", summary="The loaded model's manifest", responses={401: {}, 429: {}, 503: {}})
async def model(_key: str = Depends(require_api_key), holder=Depends(get_holder)) -> dict[str, Any]:
    lm = holder.current
    if lm is None:
        raise HTTPException(503, f"not ready: {holder.problem or 'loading'}")
    return {"manifest": public_manifest(lm.manifest), "scorer": lm.scorer.kind, "loaded_at": lm.loaded_at}
