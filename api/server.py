"""Run the scoring API under uvicorn: the image's entry point (``python -m api``) and ``fraud serve``."""

from __future__ import annotations

import os
import signal
import sys

APP = "api.main:create_app"  # an app factory (uvicorn ``factory=True``): each worker process builds its app


def run_server(app: str, *, host: str, port: int, workers: int, graceful_timeout_s: float) -> str:
    """Run the app factory ``app`` under uvicorn (uvloop + httptools, no access log: the service logs
    its own lines) until SIGTERM / SIGINT; returns " by SIGTERM" (etc.) or "" for the stop message.
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
        http="httptools",
        log_config=None,  # the caller configured JSON logging
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout_s,
        server_header=False,
    )
    return f" by {signal.Signals(stopped_by[0]).name}" if stopped_by else ""


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
