"""Load: write Parquet tables partitioned by year/month at fixed store paths and register them in the
catalog (Spark catalog locally, Glue Data Catalog on Glue: the same ``saveAsTable`` call). Overwriting
the same input gives the same tables (idempotent)."""

from __future__ import annotations


def ensure_database(spark, database: str) -> None:
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")


def write_table(df, *, database: str, table: str, path: str) -> None:
    (
        df.write.mode("overwrite")
        .format("parquet")
        .partitionBy("year", "month")
        .option("path", path)
        .saveAsTable(f"`{database}`.`{table}`")
    )
