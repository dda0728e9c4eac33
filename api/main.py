"""App factory: ``create_app()`` builds the scoring service from settings (uvicorn: ``api.main:create_app``, factory).

Start-up loads the latest verified model (the service reports not-ready until one loads), opens the
card-history store and the prediction log, and starts the poller that hot-swaps new versions. Shutdown
(SIGTERM: uvicorn stops accepting, finishes requests in flight) stops the poller and drains the
prediction log before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from api.auth import KeyVerifier, RateLimiter, parse_entries
from api.errors import RENDERERS
from api.metrics import ApiMetrics
from api.middleware import RequestContextMiddleware
from api.model_holder import ModelHolder, settle_heap
from api.routes import health, metrics, model, score
from api.scoring import ScoringService
from fraud_detection import __version__, artifacts
from fraud_detection.card_history import (
    CardHistoryStore,
    SqliteCardHistory,
    WriteBehindHistory,
    card_history_from_settings,
)
from fraud_detection.card_key import resolve_key
from fraud_detection.logs import configure_logging
from fraud_detection.prediction_log import PredictionLog, prediction_log_from_settings
from fraud_detection.settings import Settings, get_settings
from fraud_detection.storage import Store, store_from_settings

log = logging.getLogger("api")

# The interpreter lock's switch interval (default 5 ms). The prediction-log writer and the SQLite
# calls are short bursts on other threads; when one holds the lock, the event loop waits for it
# (typically right after a socket write), for up to the interval. 0.2 ms bounds that wait.
GIL_SWITCH_INTERVAL_S = 0.0002


def _limit_native_threads() -> None:
    """One BLAS / OpenMP thread per worker: the fallback predict_proba must not oversubscribe the cores."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # threadpoolctl ships with scikit-learn; without it OMP_NUM_THREADS still applies
        log.debug("threadpoolctl unavailable", exc_info=True)


async def _flush_history(hist: WriteBehindHistory) -> None:
    """Writes buffered card history once it is due (committed in a worker thread, off the event loop)."""
    while True:
        await asyncio.sleep(hist.max_delay_s)
        await hist.flush_due_async()  # a failed commit is logged and retried, never raised


def custom_openapi(app: FastAPI, request_models: list[type]) -> dict:
    """FastAPI's document plus the request models the scoring routes validate themselves."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi
        from pydantic.json_schema import models_json_schema

        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        _, defs = models_json_schema(
            [(m, "validation") for m in request_models], ref_template="#/components/schemas/{model}"
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    *,
    history: CardHistoryStore | None = None,
    prediction_log: PredictionLog | None = None,
    poll: bool = True,
) -> FastAPI:
    if not logging.getLogger().handlers:  # a uvicorn worker process: the CLI's logging setup is not inherited
        configure_logging()
    settings = settings or get_settings()
    store = store or store_from_settings(settings)
    api_metrics = ApiMetrics()
    holder = ModelHolder(
        store,
        api_metrics,
        signing_key=artifacts.signing_key(store, settings.model_signing_key),
        retry_min_s=settings.api_reload_interval_s,
        retry_max_s=max(settings.api_reload_retry_max_s, settings.api_reload_interval_s),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        _limit_native_threads()
        switch_interval = sys.getswitchinterval()  # process-wide: given back at shutdown (tests share a process)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        key = resolve_key(settings, store)
        hist = history or card_history_from_settings(settings, store)
        if isinstance(hist, SqliteCardHistory):  # one commit per flush, not per transaction
            hist = WriteBehindHistory(hist)
        plog = prediction_log or prediction_log_from_settings(settings, store)
        app.state.prediction_log = plog
        app.state.scoring = ScoringService(holder, hist, plog, key, api_metrics)
        await asyncio.to_thread(holder.poll_once)
        settle_heap()
        if not app.state.key_verifier.entries:
            log.warning("no API keys configured (FRAUD_API_KEYS): every scoring call will get 401")
        log.info(
            "scoring API started",
            extra={"pid": os.getpid(), "model_version": holder.current.version if holder.current else None},
        )
        poller = asyncio.create_task(holder.run_poller(settings.api_reload_interval_s)) if poll else None
        flusher = asyncio.create_task(_flush_history(hist)) if isinstance(hist, WriteBehindHistory) else None
        try:
            yield
        finally:
            for task in (poller, flusher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await asyncio.to_thread(plog.close)
            hist.close()
            sys.setswitchinterval(switch_interval)
            log.info("scoring API stopped", extra={"pid": os.getpid(), "predictions_logged": plog.written})

    app = FastAPI(
        title="Fraud scoring API",
        version=__version__,
        description="Scores card transactions with the latest verified fraud model. Scoring, model and "
        "metrics endpoints need an `X-API-Key` header; `/health` and `/ready` are open.",
        lifespan=lifespan,
        # no 307 to the path with or without its slash: Starlette builds that URL from the Host header
        redirect_slashes=False,
        telemetry=None if settings.api_opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = api_metrics
    app.state.holder = holder
    app.state.key_verifier = KeyVerifier(
        parse_entries(settings.api_keys.get_secret_value() if settings.api_keys else None)
    )
    app.state.rate_limiter = RateLimiter(settings.api_rate_limit_per_s, settings.api_rate_limit_burst)
    app.state.bad_key_limiter = RateLimiter(settings.api_bad_key_per_s, settings.api_bad_key_burst)

    score_router, direct_routes, request_models = score.build_routes(settings.api_max_batch)
    app.include_router(score_router)
    app.include_router(model.router)
    app.include_router(health.router)
    app.include_router(metrics.router)

    def handler(render):
        async def handle(request: Request, exc: Exception) -> Response:
            status, body, headers = render(exc, api_metrics)
            return Response(body, status_code=status, headers=headers, media_type="application/json")

        return handle

    for kind, render in RENDERERS:
        app.add_exception_handler(kind, handler(render))

    app.openapi = lambda: custom_openapi(app, request_models)  # type: ignore[method-assign]
    app.add_middleware(
        RequestContextMiddleware,
        metrics=api_metrics,
        max_body_bytes=settings.api_max_body_bytes,
        body_timeout_s=settings.api_body_timeout_s,
        access_log=settings.api_access_log,
        direct_routes=direct_routes,
    )
    return app
