"""``mlflow-ui``: open the MLflow UI on 127.0.0.1 against the local tracking store (runs, registry, aliases)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

NAME = "mlflow-ui"
HELP = (
    "Open the MLflow UI (experiment runs, registered model, champion / challenger aliases) on 127.0.0.1 "
    "against the local tracking store <store>/state/mlflow.db (or FRAUD_TRACKING_URI). Needs the dev packages."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    p.add_argument("--print-command", action="store_true", help="only print the command that would run")


def command(settings, store, port: int) -> list[str]:
    from fraud_detection.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(settings, store)
    return [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def run(args: argparse.Namespace) -> int:
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    settings = get_settings()
    cmd = command(settings, store_from_settings(settings), args.port)
    if args.print_command:
        print(" ".join(cmd))
        return 0
    if importlib.util.find_spec("mlflow.server") is None or importlib.util.find_spec("flask") is None:
        print("mlflow-ui: the UI needs the full `mlflow` package (dev packages: pipenv sync --dev)", file=sys.stderr)
        return 2
    print(f"mlflow-ui: serving http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(cmd)  # noqa: S603 - our own interpreter, fixed arguments
    except KeyboardInterrupt:
        return 0
