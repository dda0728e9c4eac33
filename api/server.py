"""Run the scoring API under uvicorn: the image's entry point (``python -m api``) and ``fraud serve``."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

APP = "api.main:create_app"  # an app factory (uvicorn ``factory=True``): each worker process builds its app


def run_server(app: str, *, host: str, port: int, workers: int, graceful_timeout_s: float) -> str:
    """Run the app factory ``app`` under uvicorn (uvloop + httptools with ``connection_limits``, no access
    log: the service logs its own lines) until SIGTERM / SIGINT; returns " by SIGTERM" (etc.) or "" for the
    stop message.
    ``serve`` runs the scoring API with it; ``bench/api_attribution.py`` runs its variants the same way."""
    # One native thread per worker (scikit-learn's OpenMP would oversubscribe the cores); set before
    # numpy / scikit-learn load in this process and, inherited, in the worker processes.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import uvicorn

    # uvicorn shuts down gracefully on SIGTERM / SIGINT, then re-raises the signal to the handler that
    # was installed before it: make that one a no-op so a clean stop (ECS stop) exits 0 with a summary.
    stopped_by: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stopped_by.append(signum))
    uvicorn.run(
        app,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        log_config=None,  # the caller configured JSON logging
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout_s,
        server_header=False,
        **connection_limits(),
    )
    return f" by {signal.Signals(stopped_by[0]).name}" if stopped_by else ""


def connection_limits() -> dict[str, Any]:
    """uvicorn's options that bound what one client can hold, from settings (the body's deadline and the
    key check before the body are the middleware's: ``api.middleware``).

    httptools with a header cap and a header timeout (``api.http_protocol``: uvicorn has neither for
    httptools); the same cap for h11, should anyone switch; idle keep-alive connections closed after
    ``api_keep_alive_s``; past ``api_max_connections`` open connections a worker answers 503 (uvicorn counts
    every open connection, slow ones too, so this is set well above the slow clients a header timeout
    lets live at once)."""
    from api.http_protocol import BoundedHttpToolsProtocol
    from fraud_detection.settings import get_settings

    s = get_settings()
    limits: dict[str, Any] = {
        "http": BoundedHttpToolsProtocol,
        "h11_max_incomplete_event_size": s.api_max_header_bytes,
        "timeout_keep_alive": s.api_keep_alive_s,
        "limit_concurrency": s.api_max_connections,
    }
    if s.api_forwarded_allow_ips:
        limits["forwarded_allow_ips"] = s.api_forwarded_allow_ips
    return limits


def serve(host: str | None = None, port: int | None = None, workers: int | None = None) -> int:
    """Serve the API with the settings' host / port / workers unless given; 0 after a clean stop."""
    from fraud_detection.settings import get_settings

    s = get_settings()
    host = host or s.api_host
    port = port or s.api_port
    workers = workers or s.api_workers
    print(f"serve: scoring API on http://{host}:{port} ({workers} worker(s)), store {s.store_uri}", file=sys.stderr)
    how = run_server(APP, host=host, port=port, workers=workers, graceful_timeout_s=s.api_graceful_timeout_s)
    print(f"serve: stopped{how}, shut down cleanly", file=sys.stderr)
    return 0
