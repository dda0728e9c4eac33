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
    log_config = write_log4j2_config(state_dir / "log4j2.properties", settings.spark_log_level)
    java_options = f"-Dderby.system.home={state_dir} -Dlog4j2.configurationFile={log_config}"
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
        .config("spark.driver.extraJavaOptions", java_options)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .enableHiveSupport()
        .getOrCreate()
    )


def write_log4j2_config(path: Path, level: str) -> Path:
    """Spark's JVM logs at ``level`` to stderr (Spark's own default is WARN and up, Hive's metastore
    warns on every lookup of a database that does not exist yet)."""
    path.write_text(
        f"rootLogger.level = {level.lower()}\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex\n"
    )
    return path
