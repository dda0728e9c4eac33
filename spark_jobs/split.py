"""Time-based split: the newest period is the test set, a validation slice before it picks the threshold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


class SplitError(ValueError):
    pass


@dataclass(frozen=True)
class TimeSplit:
    validation_from: date
    test_from: date

    def describe(self) -> dict[str, str]:
        return {"validation_from": self.validation_from.isoformat(), "test_from": self.test_from.isoformat()}


def _add_months(d: date, months: int) -> date:
    m = d.year * 12 + (d.month - 1) + months
    return date(m // 12, m % 12 + 1, 1)


def choose_split(
    min_ts: datetime, max_ts: datetime, test_months: int, validation_months: int, test_from: date | None = None
) -> TimeSplit:
    """Default: the newest ``test_months`` calendar months are the test set; ``--test-from`` overrides."""
    if test_from is None:
        test_from = _add_months(date(max_ts.year, max_ts.month, 1), -(test_months - 1))
    validation_from = _add_months(date(test_from.year, test_from.month, 1), -validation_months)
    if test_from.day != 1:  # an explicit mid-month start: the validation slice is the same length before it
        validation_from = _add_months(test_from, -validation_months).replace(day=test_from.day)
    if not (min_ts.date() < validation_from < test_from <= max_ts.date()):
        raise SplitError(
            f"data from {min_ts:%Y-%m-%d} to {max_ts:%Y-%m-%d} cannot hold a training period before "
            f"validation ({validation_from}) and test ({test_from}); give more history or another --test-from"
        )
    return TimeSplit(validation_from=validation_from, test_from=test_from)


def with_split(features, split: TimeSplit):  # DataFrame -> DataFrame with column "split"
    from pyspark.sql import functions as F

    d = F.to_date("trans_date_trans_time")
    return features.withColumn(
        "split",
        F.when(d >= F.lit(split.test_from), "test")
        .when(d >= F.lit(split.validation_from), "validation")
        .otherwise("train"),
    )


def period(split: TimeSplit, name: str):  # -> Column: rows of one period, pruning year/month partitions
    """Filter for ``train`` / ``validation`` / ``test``: a date predicate plus the same bound on the
    partition columns, so each period reads only its own partitions of the features table."""
    from pyspark.sql import functions as F

    d = F.to_date("trans_date_trans_time")
    ym = F.col("year") * 100 + F.col("month")

    def month_of(x: date) -> int:
        return x.year * 100 + x.month

    v, t = split.validation_from, split.test_from
    if name == "train":
        return (ym <= month_of(v)) & (d < F.lit(v))
    if name == "validation":
        return (ym >= month_of(v)) & (ym <= month_of(t)) & (d >= F.lit(v)) & (d < F.lit(t))
    if name == "test":
        return (ym >= month_of(t)) & (d >= F.lit(t))
    raise ValueError(f"unknown period {name!r}")
