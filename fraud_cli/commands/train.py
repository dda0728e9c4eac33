"""``train``: run the training job on local Spark (the same pipeline the Glue job runs)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import get_args

from fraud_cli.output import emit_json, summary
from fraud_detection.settings import Settings

MODEL_TYPES = get_args(Settings.model_fields["model"].annotation)  # hgb, rf, cluster: one list

NAME = "train"
HELP = "Validate, build tables and features, train, evaluate and publish a model from Kaggle-format CSVs."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="CSV files or folders of CSVs (local paths, or s3:// on AWS)",
    )
    p.add_argument(
        "--test-from",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="first day of the test period (default: the newest FRAUD_TEST_MONTHS months)",
    )
    p.add_argument(
        "--model",
        choices=MODEL_TYPES,
        default=None,
        help="model to publish (default hgb); a non-default one is compared with the default",
    )
    p.add_argument(
        "--compare",
        nargs="*",
        choices=MODEL_TYPES,
        default=[],
        help="also train these on the same split and show them in the report",
    )
    p.add_argument("--trigger", default="manual", help="recorded in the run record (manual, file, schedule)")
    p.add_argument("--run-id", default=None, help="run id to record under (default: a new one)")
    p.add_argument("--json", action="store_true", help="print the run's result as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import LocalStore, store_from_settings
    from spark_jobs.pipeline import TrainRequest, run_training
    from spark_jobs.session import build_local_session

    settings = get_settings()
    store = store_from_settings(settings)
    if not isinstance(store, LocalStore):
        print("train: local Spark needs a local store; on AWS run the Glue job (glue/train_job.py)", file=sys.stderr)
        return 2
    spark = build_local_session(settings, store.path("state"))
    try:
        result = run_training(
            spark,
            settings,
            store,
            TrainRequest(
                inputs=args.input,
                test_from=args.test_from,
                model=args.model,
                compare=args.compare,
                trigger=args.trigger,
                run_id=args.run_id,
            ),
        )
    finally:
        spark.stop()
    rec = result.record
    metrics = {k: round(v, 4) for k, v in rec.metrics.items() if isinstance(v, float)}
    if args.json:
        emit_json(
            {
                "run_id": rec.run_id,
                "version": rec.version,
                "status": rec.status,
                "metrics": metrics,
                "quarantined": rec.quarantined_files,
                "timings_s": rec.timings_s,
            }
        )
    verdict = "published as latest" if result.promoted else "NOT published"
    summary(
        f"train: {rec.status}: model {rec.version} {verdict} ({rec.promotion['reason']}); "
        f"report {store.uri(f'models/{rec.version}/report.html')}"
    )
    return 0 if result.promoted else 3
