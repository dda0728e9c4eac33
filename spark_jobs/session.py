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


# What the JVM's log lines may not carry, as a Java regular expression: a run of 8 or more digits (as many as
# the data contract's shortest card number; Spark's epoch-millisecond ids go too), or digits in the groups
# cards are printed in (4-4-4-4 with up to 7 more, 4-6-5). Spark quotes data in some warnings (a CSV header
# that does not match the schema) and exceptions; the Python side redacts with ``fraud_detection.logs``.
JVM_CARD_PATTERN = r"\d{8,}|\d{4}(?:[ -]\d{4}){3}(?:[ -]?\d{1,7})?|\d{4}[ -]\d{6}[ -]\d{5}"
JVM_REDACTED = "[card number redacted]"


def write_log4j2_config(path: Path, level: str) -> Path:
    """Spark's JVM logs at ``level`` to stderr (Spark's own default is WARN and up, Hive's metastore
    warns on every lookup of a database that does not exist yet), message and stack trace redacted."""
    regex = JVM_CARD_PATTERN.replace("\\", "\\\\")  # a .properties value: a backslash is written twice
    path.write_text(
        f"rootLogger.level = {level.lower()}\n"
        "rootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\n"
        "appender.console.name = console\n"
        "appender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.alwaysWriteExceptions = false\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: "
        f"%replace{{%m%n%ex}}{{{regex}}}{{{JVM_REDACTED}}}\n"
    )
    return path
