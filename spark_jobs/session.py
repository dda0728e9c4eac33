"""The SparkSession for the embedded default (local[*], Spark catalog with a Derby metastore in the store)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fraud_detection.settings import Settings


def build_local_session(settings: Settings, state_dir: Path, app_name: str = "fraud-train"):
    """A local session whose catalog lives under ``state_dir`` (metastore) so tables survive the process.

    On Glue the session comes from ``GlueContext`` instead, already wired to the Glue Data Catalog.
    """
    from pyspark.sql import SparkSession

    # Workers must run the interpreter running the job, or pandas UDFs fail (PLATFORM_NOTES).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    state_dir.mkdir(parents=True, exist_ok=True)
    metastore = state_dir / "metastore_db"
    return (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.sql.sources.partitionOverwriteMode", "static")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.warehouse.dir", str(state_dir / "warehouse"))
        .config("spark.hadoop.javax.jdo.option.ConnectionURL", f"jdbc:derby:;databaseName={metastore};create=true")
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={state_dir}")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .enableHiveSupport()
        .getOrCreate()
    )
