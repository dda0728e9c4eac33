"""Drift with Spark aggregates (one shared session): the same summaries as numpy, the training job's check
(champion's training period vs newer rows) writes a JSON + HTML report with plots; and the live-drift
reference profile of the champion's test period holds the score and every feature."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraud_detection import drift as D
from fraud_detection.features import FEATURE_KINDS, FEATURE_NAMES
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore
from spark_jobs import drift as SD
from tests.tracking.conftest import make_candidate
from tests.tracking.drift_data import SHIFTED, VECTOR_SHIFTED, generate, live_sample

pytestmark = pytest.mark.spark


def _frame(data: dict[str, np.ndarray], start: datetime) -> pd.DataFrame:
    df = pd.DataFrame(data)
    df["trans_date_trans_time"] = [start + timedelta(minutes=10 * i) for i in range(len(df))]
    return df


def test_spark_summaries_equal_numpy_summaries(spark):
    data = generate(11, n=1500)
    data["amt"][:7] = np.nan  # missing values are left out on both paths
    sdf = spark.createDataFrame(pd.DataFrame(data))
    edges = D.reference_edges_numpy(data, FEATURE_KINDS, 10)
    by_spark = SD.summarize_spark(sdf, FEATURE_KINDS, edges)
    by_numpy = D.summarize_numpy(data, FEATURE_KINDS, edges)
    for name in FEATURE_KINDS:
        a, b = by_spark[name], by_numpy[name]
        assert a.n == b.n and a.bins == b.bins and a.values == b.values and a.counts == b.counts, name
        if a.kind == "continuous":
            assert a.mean == pytest.approx(b.mean) and a.var == pytest.approx(b.var), name
    assert by_spark["amt"].n == 1500 - 7
    # Spark's approximate quantiles give edges close to numpy's
    sp_edges = SD.reference_edges_spark(sdf, {"amt": "continuous"}, 10)["amt"]
    assert len(sp_edges) == 9 and np.allclose(sp_edges, edges["amt"], rtol=0.05)


def test_training_check_compares_champion_training_period_with_newer_rows(spark, tmp_path):
    store = LocalStore(tmp_path)
    cand = make_candidate(store)  # champion: trained 2019-01-01 .. 2019-05-31, data up to 2019-08-31
    assert cand["manifest"].training_data["train"].end == "2019-05-31 23:59:59"
    ref = _frame(generate(21, n=2000), datetime(2019, 2, 1))  # inside the training period
    old_test = _frame(generate(22, n=500, shift=True), datetime(2019, 7, 1))  # champion's test period: ignored
    new = _frame(generate(23, n=2000, shift=True), datetime(2019, 9, 1))  # after the champion's data end
    feats = spark.createDataFrame(pd.concat([ref, old_test, new], ignore_index=True))

    summary = SD.drift_for_run(spark, Settings(), store, feats, "run-1")
    assert summary["drift_found"] and set(summary["features"]) == set(SHIFTED)
    assert summary["reason"].startswith("drift found in 4 feature(s)")
    assert summary["report"] == "reports/drift/run-1/report.json"
    assert summary["current"]["rows"] == 2000
    doc = json.loads(store.read_bytes(summary["report"]))
    assert doc["champion_version"] == cand["manifest"].version and doc["correction"] == "bonferroni"
    assert {f["name"] for f in doc["features"]} == set(FEATURE_KINDS)
    html = store.read_bytes("reports/drift/run-1/report.html").decode()
    assert "drift found in" in html and "plots/amt.png" in html
    assert store.read_bytes("reports/drift/run-1/plots/amt.png")[:4] == b"\x89PNG"

    # nothing newer than the champion's data: skipped with a note, no report
    only_old = spark.createDataFrame(pd.concat([ref, old_test], ignore_index=True))
    skipped = SD.drift_for_run(spark, Settings(), store, only_old, "run-2")
    assert not skipped["drift_found"] and "no rows after the champion's data end" in skipped["skipped"]


def test_training_check_skips_without_a_champion(spark, tmp_path):
    feats = spark.createDataFrame(_frame(generate(1, n=50), datetime(2019, 1, 1)))
    out = SD.drift_for_run(spark, Settings(), LocalStore(tmp_path), feats, "run-x")
    assert out["report"] is None and out["skipped"].startswith("no champion yet")


def test_live_reference_profile_holds_the_score_and_every_feature(spark, tmp_path):
    """build_live_profile: the champion's test period scored by the champion, every feature summarised;
    live rows from the same distribution do not drift from it, a shift only the logged vector shows does."""
    from spark_jobs import drift_checks as cmd

    store = LocalStore(tmp_path)
    cand = make_candidate(store)  # test period 2019-07-01 .. 2019-08-31
    ref = live_sample(1, 2000)
    period = _frame({n: ref.vectors[:, i] for i, n in enumerate(FEATURE_NAMES)}, datetime(2019, 7, 1))
    outside = _frame(generate(9, n=300), datetime(2019, 3, 1))  # the training period: not in the profile
    outside["weekday"] = 0.0
    spark.createDataFrame(pd.concat([period, outside], ignore_index=True)).createOrReplaceGlobalTempView("features")
    settings = Settings(store_uri=str(tmp_path), catalog_database="global_temp")

    profile = cmd.build_live_profile(spark, settings, store, cand["manifest"], cand["model"])
    assert profile["format"] == cmd.PROFILE_FORMAT and profile["model_version"] == cand["manifest"].version
    assert set(profile["summaries"]) == set(cmd.LIVE_KINDS) == set(FEATURE_KINDS) | {"score"}
    assert all(profile["summaries"][n]["kind"] == k for n, k in cmd.LIVE_KINDS.items())
    assert profile["summaries"]["score"]["n"] == 2000 and sum(profile["summaries"]["hour"]["counts"]) == 2000
    expected = cand["model"].predict_proba(ref.vectors)[:, 1]
    assert profile["summaries"]["score"]["mean"] == pytest.approx(float(expected.mean()), rel=1e-9)
    json.dumps(profile)  # cached as JSON

    # live rows scored by the same champion: same distribution -> no drift; shifted vector -> named
    def scored(sample):
        sample.score = cand["model"].predict_proba(sample.vectors)[:, 1]
        return sample.rows()

    calm = cmd.live_drift(settings, store, profile, scored(live_sample(2, 1500)), hours=24, plots=False)
    assert not calm["drift_found"], calm
    shifted = cmd.live_drift(
        settings, store, profile, scored(live_sample(3, 1500, shift_vector=True)), hours=24, plots=False
    )
    assert shifted["drift_found"] and set(VECTOR_SHIFTED) <= set(shifted["features"])
