"""AWS Glue 5.x entry script for the training job (also runs anywhere with plain Spark).

On Glue: ``awsglue`` is importable; arguments come from ``getResolvedOptions`` (``--store_uri``,
``--input``, optional ``--test_from``, ``--model``, ``--trigger``, ``--run_id``, ``--model_name``,
``--aws_region``), the SparkSession from ``GlueContext`` (tables go to the Glue Data Catalog with
``--enable-glue-datacatalog``), and the project code from the ``--extra-py-files`` archive built by
``glue/build_package.py``.
Elsewhere: the same options via argparse and a local SparkSession. Either way ``run_training`` runs.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date

OPTIONAL = (
    "test_from",
    "model",
    "trigger",
    "run_id",
    "catalog_mode",
    "card_hash_key_secret_arn",
    "model_signing_key_secret_arn",
    "model_name",
    "aws_region",
    "data_kms_key_arn",
)


def _glue_args(argv: list[str]) -> dict[str, str]:
    from awsglue.utils import getResolvedOptions

    present = [o for o in OPTIONAL if f"--{o}" in argv]
    return getResolvedOptions(argv, ["JOB_NAME", "store_uri", "input", *present])


def _plain_args(argv: list[str]) -> dict[str, str]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--store_uri", required=True)
    p.add_argument("--input", required=True, help="comma-separated files or folders")
    for o in OPTIONAL:
        p.add_argument(f"--{o}")
    return {k: v for k, v in vars(p.parse_args(argv[1:])).items() if v is not None}


def _secret(arn: str) -> str:
    """The card-hash key from Secrets Manager (never an argument value or a log line)."""
    import boto3

    return boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"].strip()


def main(argv: list[str]) -> int:
    from fraud_detection.logs import configure_logging
    from fraud_detection.settings import Settings
    from fraud_detection.storage import LocalStore, open_store
    from spark_jobs.pipeline import TrainRequest, run_training

    configure_logging("INFO")
    try:
        from awsglue.context import GlueContext
        from awsglue.job import Job
        from pyspark.context import SparkContext

        on_glue = True
    except ImportError:
        on_glue = False

    args = _glue_args(argv) if on_glue else _plain_args(argv)
    catalog_mode = args.get("catalog_mode", "glue" if on_glue else "local")
    overrides = {"store_uri": args["store_uri"], "catalog_mode": catalog_mode}
    if args.get("model_name"):  # the ModelName dimension of the metrics the stack's alarms select on
        overrides["registered_model_name"] = args["model_name"]
    if args.get("aws_region"):  # the stack's region: CloudWatch metrics land where its alarms are
        overrides["aws_region"] = args["aws_region"]
    if args.get("data_kms_key_arn"):  # quarantine/ writes use the stack's data key (SSE-KMS)
        overrides["data_kms_key_arn"] = args["data_kms_key_arn"]
    if args.get("card_hash_key_secret_arn"):
        overrides["card_hash_key"] = _secret(args["card_hash_key_secret_arn"])
    if args.get("model_signing_key_secret_arn"):  # signs the manifest the API checks before unpickling
        overrides["model_signing_key"] = _secret(args["model_signing_key_secret_arn"])
    settings = Settings(**overrides)
    store = open_store(
        settings.store_uri,
        endpoint_url=settings.aws_endpoint_url,
        region=settings.aws_region,
        kms_key_id=settings.data_kms_key_arn,
    )
    job = None
    if on_glue:
        glue_context = GlueContext(SparkContext.getOrCreate())
        spark = glue_context.spark_session
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        job = Job(glue_context)
        job.init(args["JOB_NAME"], args)
    else:
        from spark_jobs.session import build_local_session

        if not isinstance(store, LocalStore):
            raise SystemExit("without Glue, --store_uri must be a local folder (Spark here cannot read s3://)")
        spark = build_local_session(settings, store.path("state"))
    request = TrainRequest(
        inputs=[p for p in args["input"].split(",") if p],
        test_from=date.fromisoformat(args["test_from"]) if args.get("test_from") else None,
        model=args.get("model"),
        trigger=args.get("trigger", "schedule" if on_glue else "manual"),
        run_id=args.get("run_id"),
    )
    result = run_training(spark, settings, store, request)
    if job is not None:
        job.commit()
    return 0 if result.record.status in ("succeeded", "rejected") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
