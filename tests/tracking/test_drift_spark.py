"""Drift with Spark aggregates (one shared session): the same summaries as numpy, the training job's check
(champion's training period vs newer rows) writes a JSON + HTML report with plots; and live drift from a
SQLite prediction log against a reference profile."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fraud_detection import artifacts
from fraud_detection.features import FEATURE_KINDS
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore
from spark_jobs import drift as D
from tests.tracking.conftest import make_candidate
from tests.tracking.drift_data import SHIFTED, generate

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
    by_spark = D.summarize_spark(sdf, FEATURE_KINDS, edges)
    by_numpy = D.summarize_numpy(data, FEATURE_KINDS, edges)
    for name in FEATURE_KINDS:
        a, b = by_spark[name], by_numpy[name]
        assert a.n == b.n and a.bins == b.bins and a.values == b.values and a.counts == b.counts, name
        if a.kind == "continuous":
            assert a.mean == pytest.approx(b.mean) and a.var == pytest.approx(b.var), name
    assert by_spark["amt"].n == 1500 - 7
    # Spark's approximate quantiles give edges close to numpy's
    sp_edges = D.reference_edges_spark(sdf, {"amt": "continuous"}, 10)["amt"]
    assert len(sp_edges) == 9 and np.allclose(sp_edges, edges["amt"], rtol=0.05)


def test_training_check_compares_champion_training_period_with_newer_rows(spark, tmp_path):
    store = LocalStore(tmp_path)
    cand = make_candidate(store)  # champion: trained 2019-01-01 .. 2019-05-31, data up to 2019-08-31
    assert cand["manifest"].training_data["train"].end == "2019-05-31 23:59:59"
    ref = _frame(generate(21, n=2000), datetime(2019, 2, 1))  # inside the training period
    old_test = _frame(generate(22, n=500, shift=True), datetime(2019, 7, 1))  # champion's test period: ignored
    new = _frame(generate(23, n=2000, shift=True), datetime(2019, 9, 1))  # after the champion's data end
    feats = spark.createDataFrame(pd.concat([ref, old_test, new], ignore_index=True))

    summary = D.drift_for_run(spark, Settings(), store, feats, "run-1")
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
    skipped = D.drift_for_run(spark, Settings(), store, only_old, "run-2")
    assert not skipped["drift_found"] and "no rows after the champion's data end" in skipped["skipped"]


def test_training_check_skips_without_a_champion(spark, tmp_path):
    feats = spark.createDataFrame(_frame(generate(1, n=50), datetime(2019, 1, 1)))
    out = D.drift_for_run(spark, Settings(), LocalStore(tmp_path), feats, "run-x")
    assert out["report"] is None and out["skipped"].startswith("no champion yet")


def _write_prediction_log(store, rows):
    from fraud_detection.prediction_log import PredictionRecord, SqliteSink

    sink = SqliteSink(store.path("state") / "prediction_log.sqlite")
    now = datetime.now(UTC)
    sink.write(
        [
            PredictionRecord(
                f"p{i}",
                (now - timedelta(minutes=i)).isoformat(timespec="milliseconds"),
                "r",
                f"t{i}",
                "ck",
                tt,
                amt,
                "v1",
                score,
                score > 0.5,
                0.5,
                1.0,
            )  # fmt: skip
            for i, (tt, amt, score) in enumerate(rows)
        ]
    )
    sink.close()


def _live_rows(seed: int, n: int, shift: bool) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(seed)
    start = datetime(2019, 9, 1)
    hours = np.clip(np.round(rng.normal(15.0 if shift else 13.0, 4.0, n)), 0, 23).astype(int)
    days = rng.integers(0, 28, n)
    amt = rng.lognormal(3.3 if shift else 3.0, 0.8, n)
    score = rng.beta(1, 30 if not shift else 10, n)
    return [
        ((start + timedelta(days=int(d), hours=int(h), minutes=7)).strftime("%Y-%m-%d %H:%M:%S"), float(a), float(s))
        for d, h, a, s in zip(days, hours, amt, score, strict=True)
    ]


def test_live_drift_from_the_prediction_log(tmp_path, monkeypatch):
    from fraud_detection.commands import drift as cmd

    store = LocalStore(tmp_path)
    make_candidate(store)
    version = artifacts.read_latest(store).version
    # reference profile = what build_live_profile stores for the champion's test period (here: from numpy)
    ref = cmd.live_arrays(_live_rows(1, 3000, shift=False))
    edges = D.reference_edges_numpy(ref, cmd.LIVE_KINDS, 10)
    summaries = D.summarize_numpy(ref, cmd.LIVE_KINDS, edges)
    profile = {
        "model_version": version,
        "period": {"start": "2019-07-01", "end": "2019-08-31", "rows": 3000},
        "summaries": {k: v.to_dict() for k, v in summaries.items()},
    }
    store.write_bytes(cmd.profile_key(version), json.dumps(profile).encode())
    settings = Settings(store_uri=str(tmp_path))

    _write_prediction_log(store, _live_rows(2, 1500, shift=False))
    rows = cmd.read_prediction_log(settings, store, datetime.now(UTC) - timedelta(hours=48), 10_000)
    assert len(rows) == 1500
    calm = cmd.live_drift(settings, store, profile, rows, hours=48)
    assert not calm["drift_found"] and "stores no feature vector" in calm["note"]

    shifted = cmd.live_drift(settings, store, profile, _live_rows(3, 1500, shift=True), hours=48)
    assert shifted["drift_found"] and {"score", "amt", "hour"} <= set(shifted["features"])
    assert "weekday" not in shifted["features"]
    doc = json.loads(store.read_bytes(shifted["report"]))
    assert doc["kind"] == "live" and doc["current"]["rows"] == 1500
