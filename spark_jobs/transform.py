"""Pure transformations: DataFrame in, DataFrame out. No storage, no side effects."""

from __future__ import annotations

from fraud_detection import contract


def typed_with_castability(raw):
    """All-string contract columns -> typed columns + ``<col>__castable`` flags for validation."""
    from pyspark.sql import functions as F

    typed = {c.name: contract.spark_typed_column(c) for c in contract.COLUMNS}
    flags = [
        (F.col(c.name).isNull() | (F.trim(F.col(c.name)) == "") | typed[c.name].isNotNull()).alias(
            c.name + contract.CAST_CHECK_SUFFIX
        )
        for c in contract.COLUMNS
        if c.dtype != "string"
    ]
    return raw.select(*typed.values(), *flags, "source_file")


def curated_transactions(typed, file_order: dict[str, int]):
    """Typed rows of accepted files -> contract columns, deduplicated on trans_num, with year/month.

    When a trans_num appears more than once, the row from the latest file (``file_order``) wins, so the
    result does not depend on Spark's partitioning (re-runs are identical). Validation has already proved
    trans_num unique within each file, so a single file needs no deduplication shuffle.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    partitions = [F.year(contract.TIMESTAMP).alias("year"), F.month(contract.TIMESTAMP).alias("month")]
    if len(file_order) <= 1:
        return typed.select(*contract.COLUMN_NAMES, *partitions)

    order = F.lit(-1)
    for name, rank in file_order.items():
        order = F.when(F.col("source_file") == name, F.lit(rank)).otherwise(order)
    w = Window.partitionBy(contract.ID).orderBy(F.col("_file_rank").desc(), *[F.col(c) for c in contract.COLUMN_NAMES])
    return (
        typed.withColumn("_file_rank", order)
        .withColumn("_rn", F.row_number().over(w))
        .filter(F.col("_rn") == 1)
        .select(*contract.COLUMN_NAMES, *partitions)
    )
