"""``drift``: data drift on demand.

* ``fraud drift PATH...``: new Kaggle-format CSV file(s) / folder(s) vs the champion's training period
  (read from the features table), feature by feature. The new files' features are computed from those
  files alone, so card-history features see only the history inside them.
* ``fraud drift --live``: the recent prediction log vs the champion's test period: the model **score**
  and **every feature** (``features.FEATURE_KINDS``, each with the test of its kind). The API logs the
  served feature vector with each prediction; rows logged without one (older logs) still count for the
  columns every row keeps: score, amount and the transaction time (-> hour, weekday, is_night). The
  champion's test-period reference (scores and feature summaries, computed with Spark once) is cached
  under ``reports/drift/live-reference/<version>.json``, so later live checks need no Spark.
  The checks live in ``spark_jobs/drift_checks.py``; the scheduled AWS job (``glue/live_drift_job.py``)
  runs the same ``run_live_check``. This module parses arguments and prints.

Reports (JSON + HTML with per-feature plots) go to ``reports/drift/<ondemand|live>-<UTC timestamp>/``.
Exit code: 0 no drift, 3 drift found, 1 failure, 2 nothing to compare.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fraud_cli.output import emit_json
from fraud_cli.output import summary as say

NAME = "drift"
HELP = (
    "Drift report: new CSV file(s)/folder vs the champion's training data, or --live: the recent prediction "
    "log (score and every feature) vs the champion's test period. Exit 3 when drift is found."
)
EXIT_DRIFT = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="CSV files or folders to compare (not with --live)")
    p.add_argument("--live", action="store_true", help="compare the recent prediction log instead")
    p.add_argument("--hours", type=float, default=None, help="--live: window in hours (default FRAUD_LIVE_DRIFT_HOURS)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _run_live(args, settings, store) -> dict[str, Any] | None:
    from spark_jobs import drift_checks

    hours = args.hours or settings.live_drift_hours
    return drift_checks.run_live_check(
        settings, store, hours=hours, spark_session=lambda: drift_checks.local_spark_session(settings, store)
    )


def _run_files(args, settings, store) -> dict[str, Any] | None:
    from spark_jobs import drift_checks

    spark = drift_checks.local_spark(settings, store)
    try:
        return drift_checks.files_drift(spark, settings, store, args.paths)
    finally:
        spark.stop()


def run(args: argparse.Namespace) -> int:
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    settings = get_settings()
    store = store_from_settings(settings)
    if args.live == bool(args.paths):
        print("drift: give CSV PATH(s) or --live (one of them)", file=sys.stderr)
        return 2
    summary = _run_live(args, settings, store) if args.live else _run_files(args, settings, store)
    if summary is None:
        return 2
    if args.json:
        emit_json(summary)
    where = store.uri(summary["report"].rsplit("/", 1)[0] + "/report.html")
    if summary["drift_found"]:
        say(f"drift: DRIFT FOUND in {', '.join(summary['features'])} - report {where}")
        return EXIT_DRIFT
    say(f"drift: no drift found - report {where}")
    return 0
