"""``serve``: run the scoring API (``api.server``: uvicorn, uvloop + httptools) against the configured store."""

from __future__ import annotations

import argparse

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

    from api.server import serve

    return serve(args.host, args.port, args.workers)
