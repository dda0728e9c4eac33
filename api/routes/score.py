"""POST /v1/score and /v1/score/batch.

The body is validated straight from its JSON bytes by pydantic-core (``model_validate_json``): no
intermediate ``json.loads`` dict, which is most of the per-request parsing cost. The request schemas
still appear in the OpenAPI document (``openapi_extra`` + ``api.main.custom_openapi``).

No FastAPI dependencies on these two routes: resolving them costs more than scoring a transaction. The
routes read the API key header and call ``deps.authorize`` themselves (the same check as every other
protected route), and declare the key requirement in the OpenAPI document by hand.
"""

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api.auth import HEADER
from api.deps import api_key_header, authorize
from api.schemas import BatchResponse, ErrorResponse, ScoreResponse, Transaction, batch_request_model
from api.scoring import NotReady

ERRORS = {
    401: {"model": ErrorResponse, "description": "missing or invalid API key"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {"description": "invalid transaction: field-level messages in `detail`"},
    429: {"model": ErrorResponse, "description": "rate limit exceeded (see Retry-After)"},
    503: {"model": ErrorResponse, "description": "no verified model loaded yet"},
}


_HEADER = HEADER.lower()


def _openapi(name: str) -> dict:
    """The request body (validated by the route itself) and the API key requirement, for the document."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        },
        "security": [{api_key_header.scheme_name: []}],
    }


def _invalid(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]
    )


def build_router(max_batch: int) -> tuple[APIRouter, list[type]]:
    """The router and the request models its OpenAPI document must describe."""
    router = APIRouter(prefix="/v1", tags=["scoring"])
    BatchRequest = batch_request_model(max_batch)

    @router.post(
        "/score",
        response_model=ScoreResponse,
        responses=ERRORS,
        summary="Score one transaction",
        description="Fraud probability, decision at the model's threshold, and the model that answered.",
        openapi_extra=_openapi("Transaction"),
    )
    async def score(request: Request) -> Response:
        authorize(request, request.headers.get(_HEADER))
        scoring = request.app.state.scoring
        try:
            txn = Transaction.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _invalid(exc) from None
        state = request.scope["state"]
        try:
            args = (txn.__dict__, state["request_id"], state["started"])
            # SQLite history: microseconds, stay on the loop; DynamoDB: network calls, off the loop
            body = await run_in_threadpool(scoring.score_one, *args) if scoring.remote else scoring.score_one(*args)
        except NotReady as exc:
            raise HTTPException(503, f"not ready: {exc}") from exc
        return Response(body, media_type="application/json")

    @router.post(
        "/score/batch",
        response_model=BatchResponse,
        responses=ERRORS,
        summary=f"Score up to {max_batch} transactions",
        description="Same answers as /v1/score, in request order. Earlier transactions of a card in the batch "
        "count as its history for later ones.",
        openapi_extra=_openapi("BatchRequest"),
    )
    async def score_batch(request: Request) -> Response:
        authorize(request, request.headers.get(_HEADER))
        scoring = request.app.state.scoring
        try:
            batch = BatchRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _invalid(exc) from None
        state = request.scope["state"]
        try:
            args = ([t.__dict__ for t in batch.transactions], state["request_id"], state["started"])
            body = await run_in_threadpool(scoring.score_batch, *args) if scoring.remote else scoring.score_batch(*args)
        except NotReady as exc:
            raise HTTPException(503, f"not ready: {exc}") from exc
        return Response(body, media_type="application/json")

    return router, [Transaction, BatchRequest]
