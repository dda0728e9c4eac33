"""The training job end to end on local Spark: validation + quarantine, tables, artifact, latest pointer,
idempotency, and a failing run that leaves ``latest`` untouched."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from fraud_detection import artifacts
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore
from spark_jobs.pipeline import RunFailed, TrainRequest, run_training

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _settings(store: Path, db: str, **kw) -> Settings:
    return Settings(store_uri=str(store), catalog_database=db, max_training_rows=30_000, spark_master="local[2]", **kw)


def _broken_copy(src: Path, dest: Path, n_rows: int = 2_000) -> None:
    """The first rows of a good file with 3 negative amounts and 2 unknown categories."""
    with src.open() as fin, dest.open("w", newline="") as fout:
        reader, writer = csv.reader(fin), csv.writer(fout)
        header = next(reader)
        writer.writerow(header)
        amt, cat = header.index("amt"), header.index("category")
        for i, row in enumerate(reader):
            if i >= n_rows:
                break
            if i in (10, 20, 30):
                row[amt] = "-5.00"
            if i in (40, 50):
                row[cat] = "crypto"
            writer.writerow(row)


@pytest.fixture(scope="module")
def first_run(spark, small_history_csv, tmp_path_factory):
    store_dir = tmp_path_factory.mktemp("store")
    inputs = tmp_path_factory.mktemp("inputs")
    shutil.copy(small_history_csv, inputs / "history.csv")
    _broken_copy(small_history_csv, inputs / "broken.csv")
    (inputs / "wrong_header.csv").write_text("a,b,c\n1,2,3\n")
    settings = _settings(store_dir, "fraud_e2e")
    store = LocalStore(store_dir)
    result = run_training(spark, settings, store, TrainRequest(inputs=[str(inputs)]))
    return spark, settings, store, inputs, result


def test_good_file_accepted_and_broken_files_quarantined_with_reasons(first_run):
    _, _, store, _, result = first_run
    assert result.record.accepted_files == ["history.csv"]
    assert sorted(result.record.quarantined_files) == ["quarantine/broken.csv", "quarantine/wrong_header.csv"]
    reason = json.loads(store.read_bytes("quarantine/broken.csv.reason.json"))
    failed = {(f["expectation"], f["column"]): f["unexpected_count"] for f in reason["failed_expectations"]}
    assert failed == {
        ("expect_column_values_to_be_between", "amt"): 3,
        ("expect_column_values_to_be_in_set", "category"): 2,
    }
    assert reason["rows"] == 2_000
    assert "missing=" in json.loads(store.read_bytes("quarantine/wrong_header.csv.reason.json"))["error"]
    assert store.exists("quarantine/broken.csv")
    docs = result.record.extra["validation_docs"]
    assert store.exists(docs) and b"<html" in store.read_bytes(docs).lower()


def test_tables_registered_and_deduplicated(first_run, small_history_csv):
    spark, settings, _, _, _ = first_run
    with small_history_csv.open() as fh:
        n_rows = sum(1 for _ in fh) - 1
    tx = spark.table("fraud_e2e.transactions")
    assert tx.count() == n_rows == tx.select("trans_num").distinct().count()
    assert {"year", "month"} <= set(tx.columns) and "source_file" not in tx.columns
    feats = spark.table("fraud_e2e.features")
    assert feats.count() == n_rows
    assert "cc_num" not in feats.columns
    tables = {t.name for t in spark.catalog.listTables("fraud_e2e")}
    assert tables == {"transactions", "features"}


def test_artifact_is_loadable_and_matches_its_manifest(first_run):
    _, _, store, _, result = first_run
    assert result.promoted, result.record.promotion
    pointer = artifacts.read_latest(store)
    assert pointer.version == result.record.version
    manifest, model = artifacts.load_latest(store)
    blob = store.read_bytes(f"models/{manifest.version}/model.joblib")
    assert artifacts.sha256_hex(blob) == manifest.model_sha256
    assert [f.name for f in manifest.features][:3] == ["amt", "category_idx", "is_online"]
    metrics = json.loads(store.read_bytes(f"models/{manifest.version}/metrics.json"))
    for key in (
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "f1",
        "threshold",
        "recall_at_1pct_fpr",
        "recall_at_0_1pct_fpr",
        "confusion_matrix",
    ):
        assert key in metrics
    assert set(metrics["splits"]) == {"train", "validation", "test"}
    assert all(metrics["splits"][s]["frauds"] > 0 for s in metrics["splits"])
    assert (
        metrics["splits"]["train"]["end"]
        < metrics["splits"]["validation"]["start"]
        < metrics["splits"]["test"]["start"]
    )
    assert metrics["roc_auc"] > 0.9, metrics
    report = store.read_bytes(f"models/{manifest.version}/report.html").decode()
    assert report.count("data:image/png;base64,") >= 3
    import numpy as np

    X = np.zeros((2, len(manifest.features)))
    assert model.predict_proba(X).shape == (2, 2)


def test_rerun_on_same_input_changes_nothing(first_run):
    spark, settings, store, inputs, first = first_run

    def snapshot():
        tx = spark.table("fraud_e2e.transactions")
        f = spark.table("fraud_e2e.features")
        return (
            tx.count(),
            tx.selectExpr("sum(amt)", "sum(is_fraud)").first(),
            f.count(),
            f.selectExpr("sum(n_24h)", "sum(amt_to_mean_30d)").first(),
        )

    before = snapshot()
    second = run_training(spark, settings, store, TrainRequest(inputs=[str(inputs)]))
    assert snapshot() == before
    assert second.record.metrics["pr_auc"] == pytest.approx(first.record.metrics["pr_auc"], abs=1e-9)
    assert sorted(second.record.quarantined_files) == sorted(first.record.quarantined_files)


def test_failed_runs_leave_latest_untouched(first_run, tmp_path):
    spark, settings, store, inputs, _ = first_run
    before = store.read_bytes(artifacts.LATEST_KEY)
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    shutil.copy(inputs / "broken.csv", only_bad / "broken.csv")
    with pytest.raises(RunFailed, match="no input file passed validation"):
        run_training(spark, settings, store, TrainRequest(inputs=[str(only_bad)]))
    # a model below the floor is kept as a version but not published
    strict = settings.model_copy(update={"min_pr_auc": 1.01})
    rejected = run_training(spark, strict, store, TrainRequest(inputs=[str(inputs / "history.csv")]))
    assert not rejected.promoted and "below the floor" in rejected.record.promotion["reason"]
    assert store.exists(f"models/{rejected.record.version}/manifest.json")
    assert store.read_bytes(artifacts.LATEST_KEY) == before
    runs = sorted(p.name for p in store.path("runs").iterdir())
    statuses = [json.loads((store.path("runs") / r).read_text())["status"] for r in runs]
    assert "failed" in statuses and "rejected" in statuses


def test_backfilled_history_gives_the_api_the_training_features(first_run, monkeypatch):
    """Seed the online store from the training snapshot: for a new transaction right after the data end,
    the features built from the backfilled store equal those built from each card's full history."""
    import argparse
    import math
    from collections import defaultdict
    from datetime import timedelta

    from fraud_cli.commands import backfill_history
    from fraud_detection import features
    from fraud_detection.card_history import card_history_from_settings
    from fraud_detection.card_key import card_key, resolve_key
    from fraud_detection.settings import get_settings

    spark, settings, store, _, _ = first_run
    monkeypatch.setenv("FRAUD_STORE_URI", str(store.root))
    get_settings.cache_clear()
    try:
        assert backfill_history.run(argparse.Namespace(batch=1_000)) == 0
        history = card_history_from_settings(get_settings(), store)
        key = resolve_key(settings, store)
        rows = sorted(spark.table("fraud_e2e.transactions").collect(), key=lambda r: r["trans_date_trans_time"])
        end = rows[-1]["trans_date_trans_time"]
        full: dict[str, list] = defaultdict(list)
        last: dict[str, dict] = {}
        for r in rows:
            ck = card_key(r["cc_num"], key)
            full[ck].append(features.history_record(r.asDict()))
            last[ck] = r.asDict()
        probe_time = end + timedelta(seconds=1)
        checked = 0
        for ck, txn in list(last.items())[:40]:
            probe = {**txn, "trans_date_trans_time": probe_time}
            t = features.epoch_seconds(probe_time)
            stored = history.read(ck, before_ts=t)
            from_store = features.transaction_features(probe, features.History.from_records(stored))
            from_all = features.transaction_features(probe, features.History.from_records(full[ck]))
            for name, a, b in zip(features.FEATURE_NAMES, from_store, from_all, strict=True):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (name, a, b)
            checked += 1
        assert checked == 40
        assert sum(1 for ck in list(last)[:40] if history.read(ck, before_ts=features.epoch_seconds(probe_time))) > 30
        history.close()
    finally:
        get_settings.cache_clear()
