"""Time split: the default periods, --test-from, and partition-pruned period filters equal the split labels."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from spark_jobs import split


def test_default_split_is_the_newest_months():
    s = split.choose_split(datetime(2019, 1, 1), datetime(2020, 12, 31, 23), test_months=2, validation_months=1)
    assert (s.validation_from, s.test_from) == (date(2020, 10, 1), date(2020, 11, 1))


def test_test_from_mid_month_keeps_a_validation_slice_of_the_same_length():
    s = split.choose_split(datetime(2019, 1, 1), datetime(2020, 12, 31), 2, 1, test_from=date(2020, 6, 21))
    assert (s.validation_from, s.test_from) == (date(2020, 5, 21), date(2020, 6, 21))


def test_too_little_history_is_a_clear_error():
    with pytest.raises(split.SplitError, match="cannot hold a training period"):
        split.choose_split(datetime(2020, 11, 5), datetime(2020, 12, 31), 2, 1)


@pytest.mark.spark
@pytest.mark.parametrize("test_from", [None, date(2019, 6, 21)])
def test_period_filters_match_split_labels(spark, test_from):
    from pyspark.sql import functions as F

    days = [datetime(2019, 1, 1, 12) + timedelta(days=i) for i in range(0, 240, 3)]
    df = spark.createDataFrame([(d,) for d in days], ["trans_date_trans_time"]).select(
        "trans_date_trans_time",
        F.year("trans_date_trans_time").alias("year"),
        F.month("trans_date_trans_time").alias("month"),
    )
    s = split.choose_split(min(days), max(days), 2, 1, test_from=test_from)
    labelled = {r[0]: r[1] for r in split.with_split(df, s).select("trans_date_trans_time", "split").collect()}
    for name in ("train", "validation", "test"):
        got = {r[0] for r in df.filter(split.period(s, name)).collect()}
        assert got == {d for d, lab in labelled.items() if lab == name}
        assert got
