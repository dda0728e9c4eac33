"""``retrain``: ask for a training run on everything in ``raw/`` now — the monthly schedule's command.

    0 3 1 * *  cd /path/to/repo && .venv/bin/python -m fraud_cli retrain --trigger schedule

Goes through the same launcher as a file drop: if a run is going, this becomes (or joins) the one
follow-up run. With ``--wait`` it waits for the outcome and exits like ``train``: 0 promoted, 3 trained
but not promoted, 1 failed or not finished in time.
"""

from __future__ import annotations

import argparse

from fraud_cli.output import emit_json, summary

NAME = "retrain"
HELP = "Start a training run on all of raw/ now (e.g. --trigger schedule from cron); --wait for its outcome."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trigger", default="manual", choices=("manual", "schedule", "file", "demo"), help="recorded")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait up to this long for the result")
    p.add_argument("--json", action="store_true", help="with --wait: print the run's result as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from fraud_detection.idempotency import open_kv
    from fraud_detection.launcher import launcher_from_settings, wait_for_run
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    settings = get_settings()
    store = store_from_settings(settings)
    if not store.list("raw/"):
        summary(f"retrain: nothing in {store.uri('raw/')} to train on (drop files into landing/ first)")
        return 1
    launcher = launcher_from_settings(settings, store, open_kv(settings, store))
    launch = launcher.request_run(args.trigger, [])
    summary(f"retrain: run {launch.run_id} {launch.status} ({launcher.name} launcher, trigger {args.trigger})")
    if args.wait <= 0:
        return 0
    record = wait_for_run(store, launch.run_id, args.wait)
    if record is None:
        summary(f"retrain: run {launch.run_id} not finished after {args.wait:.0f}s (see `fraud runs`)")
        return 1
    fields = ("run_id", "status", "version", "metrics", "promotion", "error")
    if args.json:
        emit_json(record.model_dump(include=set(fields), mode="json"))
    promoted = bool(record.promotion and record.promotion.get("promoted"))
    summary(f"retrain: {record.status}: version {record.version} {'promoted' if promoted else 'not promoted'}")
    return 0 if promoted else 3 if record.status == "rejected" else 1
