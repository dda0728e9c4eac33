"""POST /v1/score and /v1/score/batch.

Each route is one handler, ``(app state, key id, body bytes, request id, start time) -> Scored`` (the
JSON body, and the prediction-log and metrics step to run once it is sent), that raises
``HTTPException`` / ``RequestValidationError`` for the error responses. The caller is authorized
(``api.deps.authorize``) before its body is read, so a keyless client costs no body buffer. Two ways
reach a handler:

* directly from ``RequestContextMiddleware`` (``build_routes``' direct handlers): a POST to exactly
  these paths skips FastAPI's router, exception middleware and request objects, which cost more than
  scoring one transaction; errors are rendered by ``api.errors``, the same renderer as FastAPI's exception handlers;
* through FastAPI, with the same handler: the routes stay in the router, so the OpenAPI document,
  ``/docs``, a 405 for another method, and an app without the middleware all keep working.

The body is validated straight from its JSON bytes by pydantic-core (``model_validate_json``): no
intermediate ``json.loads`` dict. The request schemas appear in the OpenAPI document (``openapi_extra`` +
``api.main.custom_openapi``), as does the API key requirement.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from api.auth import HEADER
from api.deps import api_key_header, authorize, client_host
from api.schemas import (
    BatchResponse,
    ErrorResponse,
    ScoreResponse,
    Transaction,
    batch_request_model,
    check_unique_ids,
)
from api.scoring import NotReady, Scored

ERRORS = {
    401: {"model": ErrorResponse, "description": "missing or invalid API key"},
    408: {"model": ErrorResponse, "description": "request body not received in time"},
    413: {"model": ErrorResponse, "description": "request body too large"},
    422: {
        "description": "invalid transaction: field-level messages in `detail` (also: a trans_num twice in one "
        "batch, a birth date after the transaction)"
    },
    429: {"model": ErrorResponse, "description": "rate limit exceeded (see Retry-After)"},
    503: {"model": ErrorResponse, "description": "no verified model loaded yet"},
}

# (app state, authorized key id, body, request id, start time) -> response body and what follows it
Handler = Callable[[Any, str, bytes, str, float], Awaitable[Scored]]

_HEADER = HEADER.lower()


def _openapi(name: str) -> dict:
    """The request body (validated by the handler itself) and the API key requirement, for the document."""
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


def _validated(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


async def _run(scoring, method, *args) -> Scored:
    """SQLite history: microseconds, on the event loop; DynamoDB: network calls, in a worker thread."""
    try:
        return await run_in_threadpool(method, *args) if scoring.remote else method(*args)
    except NotReady as exc:  # why (a refused version, a missing pointer) is in the log, not the answer
        raise HTTPException(503, "not ready: no verified model loaded yet") from exc


async def score_one(state, key_id: str, body: bytes, request_id: str, started: float) -> Scored:
    txn = _validated(Transaction, body)
    scoring = state.scoring
    return await _run(scoring, scoring.score_one, txn.__dict__, request_id, started)


def batch_handler(max_batch: int) -> tuple[Handler, type[BaseModel]]:
    BatchRequest = batch_request_model(max_batch)

    async def score_batch(state, key_id: str, body: bytes, request_id: str, started: float) -> Scored:
        batch = _validated(BatchRequest, body)
        state.rate_limiter.charge(key_id, len(batch.transactions) - 1)  # one token per transaction
        check_unique_ids(batch.transactions, ("transactions",))
        scoring = state.scoring
        txns = [t.__dict__ for t in batch.transactions]
        return await _run(scoring, scoring.score_batch, txns, request_id, started)

    return score_batch, BatchRequest


def _endpoint(handler: Handler):
    """The FastAPI endpoint for a handler."""

    async def endpoint(request: Request) -> Response:
        state = request.scope["state"]
        key_id = authorize(request.app.state, request.headers.get(_HEADER), client_host(request))
        scored = await handler(request.app.state, key_id, await request.body(), state["request_id"], state["started"])
        return Response(scored.body, media_type="application/json", background=BackgroundTask(scored.record))

    return endpoint


def build_routes(max_batch: int) -> tuple[APIRouter, dict[str, Handler], list[type]]:
    """The router, the handlers by path for the direct dispatch, and the request models the OpenAPI
    document must describe."""
    router = APIRouter(prefix="/v1", tags=["scoring"])
    score_batch, BatchRequest = batch_handler(max_batch)
    router.add_api_route(
        "/score",
        _endpoint(score_one),
        methods=["POST"],
        name="score",
        response_model=ScoreResponse,
        responses=ERRORS,
        summary="Score one transaction",
        description="Fraud probability, decision at the model's threshold, and the model that answered.",
        openapi_extra=_openapi("Transaction"),
    )
    router.add_api_route(
        "/score/batch",
        _endpoint(score_batch),
        methods=["POST"],
        name="score_batch",
        response_model=BatchResponse,
        responses=ERRORS,
        summary=f"Score up to {max_batch} transactions",
        description="Same answers as /v1/score, in request order. Earlier transactions of a card in the batch "
        "count as its history for later ones.",
        openapi_extra=_openapi("BatchRequest"),
    )
    direct = {"/v1/score": score_one, "/v1/score/batch": score_batch}
    return router, direct, [Transaction, BatchRequest]
