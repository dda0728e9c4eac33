"""``serve``: run the scoring API (uvicorn, uvloop + httptools) against the configured store."""

from __future__ import annotations

import argparse
import os
import signal
import sys

NAME = "serve"
HELP = "Run the scoring API with the latest verified model (FRAUD_STORE_URI; port / workers from FRAUD_API_*)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="interface to bind (default FRAUD_API_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default FRAUD_API_PORT, 8000)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default FRAUD_API_WORKERS, 1)")
    p.add_argument(
        "--new-api-key",
        metavar="KEY_ID",
        default=None,
        help="print a new random API key and the FRAUD_API_KEYS entry that accepts it, then exit",
    )


def run(args: argparse.Namespace) -> int:
    if args.new_api_key:
        from api.auth import new_api_key

        key, entry = new_api_key(args.new_api_key)
        print(f"API key (give to the client, shown once): {key}")
        print(f"FRAUD_API_KEYS entry (configure on the server): {entry}")
        return 0

    from fraud_detection.settings import get_settings

    s = get_settings()
    host = args.host or s.api_host
    port = args.port or s.api_port
    workers = args.workers or s.api_workers
    print(f"serve: scoring API on http://{host}:{port} ({workers} worker(s)), store {s.store_uri}", file=sys.stderr)
    how = run_server(APP, host=host, port=port, workers=workers, graceful_timeout_s=s.api_graceful_timeout_s)
    print(f"serve: stopped{how}, shut down cleanly", file=sys.stderr)
    return 0


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
        log_config=None,  # the CLI configured JSON logging
        access_log=False,
        timeout_graceful_shutdown=graceful_timeout_s,
        server_header=False,
    )
    return f" by {signal.Signals(stopped_by[0]).name}" if stopped_by else ""
