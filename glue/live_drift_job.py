"""AWS Glue 5.x entry script for the scheduled live-drift check (also runs anywhere with plain Python).

The check is ``fraud drift --live``'s own (``spark_jobs.drift_checks.run_live_check``): the
prediction log of the last ``--hours`` (the DynamoDB table on AWS) against the champion's test period,
the score and every feature, a report under ``reports/drift/live-<stamp>/``. Its result is published
as ``FraudDetection/DriftFound`` with the one dimension ``ModelName`` (``monitoring.publish_live_drift``):
the stack's data-drift alarm fires on it. Drift found is not a job failure: the job succeeds and the
alarm speaks; a run with nothing to compare (no champion, fewer than 2 predictions) publishes nothing.

On Glue: ``awsglue`` is importable; arguments come from ``getResolvedOptions`` (``--store_uri`` and the
optional ones in ``OPTIONAL``), the SparkSession from ``GlueContext`` (used only to build the champion's
reference profile from the catalog's features table when it is not cached yet), the project code from
the ``--extra-py-files`` archive built by ``glue/build_package.py``.
Elsewhere: the same options via argparse, the store a local folder, Spark local and only if needed::

    python glue/live_drift_job.py --store_uri var [--hours 24]
"""

from __future__ import annotations

import argparse
import sys
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraud_detection.settings import Settings

# option -> Settings field it sets (every one optional; the template passes all of them on AWS)
OPTIONAL = {
    "hours": "live_drift_hours",
    "max_rows": "live_drift_max_rows",
    "kv_backend": "kv_backend",
    "prediction_log_table": "prediction_log_table",
    "model_name": "registered_model_name",
    "aws_region": "aws_region",
    "catalog_mode": "catalog_mode",
    "metrics_backend": "metrics_backend",
}
# option -> Settings field it sets with the value of the Secrets Manager secret the option names
SECRETS = {"model_signing_key_secret_arn": "model_signing_key"}  # checks the champion's manifest


def _glue_args(argv: list[str]) -> dict[str, str]:
    from awsglue.utils import getResolvedOptions

    present = [o for o in (*OPTIONAL, *SECRETS) if f"--{o}" in argv]
    return getResolvedOptions(argv, ["JOB_NAME", "store_uri", *present])


def _plain_args(argv: list[str]) -> dict[str, str]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store_uri", required=True)
    for o in (*OPTIONAL, *SECRETS):
        p.add_argument(f"--{o}")
    return {k: v for k, v in vars(p.parse_args(argv[1:])).items() if v is not None}


def settings_overrides(args: dict[str, str], on_glue: bool) -> dict[str, Any]:
    """Job arguments -> Settings fields; on Glue the prediction log is the DynamoDB table by default."""
    overrides: dict[str, Any] = {"store_uri": args["store_uri"]}
    if on_glue:
        overrides |= {"kv_backend": "dynamodb", "catalog_mode": "glue"}
    overrides |= {field: args[option] for option, field in OPTIONAL.items() if args.get(option)}
    return overrides


def with_secrets(settings: Settings, args: dict[str, str]) -> Settings:
    """``settings`` with the keys the ``SECRETS`` options name, read from Secrets Manager in the settings'
    region (and endpoint); never an argument value or a log line."""
    from pydantic import SecretStr

    found = {field: secret_value(args[option], settings) for option, field in SECRETS.items() if args.get(option)}
    return settings.model_copy(update={k: SecretStr(v) for k, v in found.items()}) if found else settings


def secret_value(arn: str, settings: Settings) -> str:
    import boto3

    client = boto3.client("secretsmanager", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)
    return client.get_secret_value(SecretId=arn)["SecretString"].strip()


def _glue_spark(args: dict[str, str]):
    """(SparkSession, Job) from the GlueContext; the job is initialised so Glue tracks the run."""
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    glue_context = GlueContext(SparkContext.getOrCreate())
    spark = glue_context.spark_session
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    job = Job(glue_context)
    job.init(args["JOB_NAME"], args)
    return spark, job


def main(argv: list[str]) -> int:
    from fraud_detection import monitoring
    from fraud_detection.logs import configure_logging
    from fraud_detection.settings import Settings
    from fraud_detection.storage import open_store
    from spark_jobs import drift_checks as drift

    configure_logging("INFO")
    try:
        import awsglue  # noqa: F401

        on_glue = True
    except ImportError:
        on_glue = False

    args = _glue_args(argv) if on_glue else _plain_args(argv)
    settings = with_secrets(Settings(**settings_overrides(args, on_glue)), args)
    store = open_store(settings.store_uri, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region)
    job = None
    if on_glue:
        spark, job = _glue_spark(args)
        spark_session = lambda: nullcontext(spark)  # noqa: E731 - Glue owns the session: never stopped here
    else:
        spark_session = lambda: drift.local_spark_session(settings, store)  # noqa: E731

    summary = drift.run_live_check(settings, store, hours=settings.live_drift_hours, spark_session=spark_session)
    if summary is None:
        print("live drift: nothing to compare; no metric published")
    else:
        published = monitoring.publish_live_drift(settings, store, summary)
        found = f"DRIFT FOUND in {', '.join(summary['features'])}" if summary["drift_found"] else "no drift found"
        print(f"live drift: {found} - report {store.uri(summary['report'])} - DriftFound to {published['destination']}")
    if job is not None:
        job.commit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
