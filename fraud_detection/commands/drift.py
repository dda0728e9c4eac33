"""``drift``: data drift on demand.

* ``fraud drift PATH...``: new Kaggle-format CSV file(s) / folder(s) vs the champion's training period
  (read from the features table), feature by feature. The new files' features are computed from those
  files alone, so card-history features see only the history inside them.
* ``fraud drift --live``: the recent prediction log vs the champion's test period. The prediction log
  stores no feature vector, only what it keeps per prediction: the **score**, the **amount** and the
  transaction time (-> **hour**, **weekday**, **is_night**); those five are compared. The champion's
  test-period reference (its scores computed with Spark once) is cached under
  ``reports/drift/live-reference/<version>.json``, so later live checks need no Spark.

Reports (JSON + HTML with per-feature plots) go to ``reports/drift/<ondemand|live>-<UTC timestamp>/``.
Exit code: 0 no drift, 3 drift found, 1 failure, 2 nothing to compare.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

NAME = "drift"
HELP = (
    "Drift report: new CSV file(s)/folder vs the champion's training data, or --live: the recent prediction "
    "log (score, amount, hour, weekday, night) vs the champion's test period. Exit 3 when drift is found."
)

LIVE_KINDS = {"score": "continuous", "amt": "continuous", "hour": "ordinal", "weekday": "ordinal", "is_night": "binary"}
LIVE_NOTE = (
    "the prediction log stores no feature vector; compared: model score, amount, and hour / weekday / night "
    "derived from the transaction time"
)
PROFILE_PREFIX = "reports/drift/live-reference"
EXIT_DRIFT = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="CSV files or folders to compare (not with --live)")
    p.add_argument("--live", action="store_true", help="compare the recent prediction log instead")
    p.add_argument("--hours", type=float, default=None, help="--live: window in hours (default FRAUD_LIVE_DRIFT_HOURS)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


# =================================================================================================
# Live: prediction log vs the champion's test period
# =================================================================================================


def read_prediction_log(settings, store, since: datetime, max_rows: int) -> list[tuple[str, float, float]]:
    """(trans_time, amt, score) of predictions logged since ``since``, newest first, at most ``max_rows``."""
    cutoff = since.isoformat(timespec="milliseconds")
    if settings.kv_backend == "dynamodb":
        import boto3

        client = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
        out: list[tuple[str, float, float]] = []
        kwargs: dict[str, Any] = {
            "TableName": settings.prediction_log_table,
            "FilterExpression": "logged_at >= :c",
            "ExpressionAttributeValues": {":c": {"S": cutoff}},
            "ProjectionExpression": "trans_time, amt, score",
        }
        for _ in range(10_000):  # bounded: pages of up to 1 MB
            page = client.scan(**kwargs)
            for it in page.get("Items", []):
                if "trans_time" in it and "score" in it:
                    out.append(
                        (it["trans_time"]["S"], float(it.get("amt", {"N": "nan"})["N"]), float(it["score"]["N"]))
                    )
            if len(out) >= max_rows or "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out[:max_rows]
    from fraud_detection.card_history import state_dir

    path = state_dir(settings, store) / "prediction_log.sqlite"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(
            "SELECT trans_time, amt, score FROM prediction_log WHERE logged_at >= ? ORDER BY logged_at DESC LIMIT ?",
            (cutoff, max_rows),
        ).fetchall()
    finally:
        conn.close()


def live_arrays(rows: list[tuple[str, float, float]]) -> dict[str, np.ndarray]:
    """Prediction-log rows -> the live columns (hour / weekday / night as the features define them)."""
    from fraud_detection.features import NIGHT_END_HOUR, NIGHT_START_HOUR, parse_timestamp

    hour, weekday, amt, score = [], [], [], []
    for trans_time, a, s in rows:
        try:
            t = parse_timestamp(trans_time)
        except (TypeError, ValueError):
            continue
        hour.append(t.hour)
        weekday.append(t.weekday())
        amt.append(np.nan if a is None else float(a))
        score.append(float(s))
    h = np.asarray(hour, np.float64)
    return {
        "score": np.asarray(score, np.float64),
        "amt": np.asarray(amt, np.float64),
        "hour": h,
        "weekday": np.asarray(weekday, np.float64),
        "is_night": ((h >= NIGHT_START_HOUR) | (h < NIGHT_END_HOUR)).astype(np.float64),
    }


def build_live_profile(spark, settings, store, manifest, model) -> dict[str, Any]:
    """Summaries of the champion's test period (score with the champion, amount, hour, weekday, night)."""
    from pyspark.sql import functions as F

    from fraud_detection.features import FEATURE_NAMES
    from spark_jobs import drift as D
    from spark_jobs.evaluate import score_spark
    from spark_jobs.pipeline import FEATURES_TABLE

    test = manifest.training_data["test"]
    feats = spark.table(f"`{settings.catalog_database}`.`{FEATURES_TABLE}`")
    ts = F.col("trans_date_trans_time")
    period = feats.where((ts >= F.lit(test.start).cast("timestamp")) & (ts <= F.lit(test.end).cast("timestamp")))
    ids = ("ref_amt", "ref_hour", "ref_weekday", "ref_is_night")
    src = period.select(
        F.col("amt").alias("ref_amt"),
        F.col("hour").alias("ref_hour"),
        F.col("weekday").alias("ref_weekday"),
        F.col("is_night").alias("ref_is_night"),
        *FEATURE_NAMES,
    )
    scored = score_spark(src, model, id_cols=ids).select(
        "score", *[F.col(i).cast("double").alias(i.removeprefix("ref_")) for i in ids]
    )
    edges = D.reference_edges_spark(scored, LIVE_KINDS, settings.drift_psi_bins)
    summaries = D.summarize_spark(scored, LIVE_KINDS, edges, seed=settings.random_seed)
    return {
        "model_version": manifest.version,
        "period": {"start": test.start, "end": test.end, "rows": test.rows},
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "summaries": {k: v.to_dict() for k, v in summaries.items()},
    }


def profile_key(version: str) -> str:
    return f"{PROFILE_PREFIX}/{version}.json"


def live_drift(settings, store, profile: dict[str, Any], rows: list, *, hours: float) -> dict[str, Any]:
    """Compare prediction-log rows with a reference profile; writes the report; returns the summary."""
    from spark_jobs import drift as D

    ref = {k: D.Summary.from_dict(v) for k, v in profile["summaries"].items()}
    cur_data = live_arrays(rows)
    edges = {k: s.edges or [] for k, s in ref.items() if s.kind == "continuous"}
    cur = D.summarize_numpy(
        cur_data,
        {k: s.kind for k, s in ref.items()},
        edges,
        max_distinct=settings.drift_max_distinct,
        sample_rows=settings.drift_sample_rows,
        seed=settings.random_seed,
    )
    result = D.compare(
        ref, cur, alpha=settings.drift_alpha, min_psi=settings.drift_min_psi, psi_bins=settings.drift_psi_bins
    )
    meta = {
        "kind": "live",
        "note": LIVE_NOTE,
        "champion_version": profile["model_version"],
        "reference": {"what": "champion test period", **profile["period"]},
        "current": {"what": f"prediction log, last {hours:g} h", "rows": int(cur_data["score"].size)},
    }
    key = D.write_report(store, f"{D.REPORTS}/live-{_stamp()}", result, meta)
    return D.summary_for_record(result, key, note=LIVE_NOTE, current_rows=int(cur_data["score"].size))


def _run_live(args, settings, store) -> dict[str, Any] | None:
    from fraud_detection import artifacts

    pointer = artifacts.read_latest(store)
    if pointer is None:
        print("drift: no champion (models/latest.json) to compare with", file=sys.stderr)
        return None
    hours = args.hours or settings.live_drift_hours
    rows = read_prediction_log(
        settings, store, datetime.now(UTC) - timedelta(hours=hours), settings.live_drift_max_rows
    )
    if len(rows) < 2:
        print(f"drift: {len(rows)} prediction(s) logged in the last {hours:g} h: nothing to compare", file=sys.stderr)
        return None
    key = profile_key(pointer.version)
    if store.head(key) is not None:
        profile = json.loads(store.read_bytes(key))
    else:
        spark = _local_spark(settings, store)
        try:
            manifest, model = artifacts.load_model(store, pointer.version)
            profile = build_live_profile(spark, settings, store, manifest, model)
        finally:
            spark.stop()
        store.write_bytes(key, json.dumps(profile).encode())
    return live_drift(settings, store, profile, rows, hours=hours)


# =================================================================================================
# Files: new CSVs vs the champion's training period
# =================================================================================================


def _local_spark(settings, store):
    from fraud_detection.storage import LocalStore
    from spark_jobs.session import build_local_session

    if not isinstance(store, LocalStore):
        raise RuntimeError("local Spark needs a local store (on AWS run the drift check in the Glue job)")
    return build_local_session(settings, store.path("state"), app_name="fraud-drift")


def files_drift(spark, settings, store, paths: list[str]) -> dict[str, Any] | None:
    """New CSV file(s) / folder(s) vs the champion's training period; writes the report, returns the summary."""
    from functools import reduce

    from pyspark.sql import functions as F

    from fraud_detection import artifacts, contract
    from fraud_detection.card_key import resolve_key
    from fraud_detection.features import FEATURE_KINDS, spark_features
    from spark_jobs import drift as D
    from spark_jobs import extract, transform
    from spark_jobs.pipeline import FEATURES_TABLE

    pointer = artifacts.read_latest(store)
    if pointer is None:
        print("drift: no champion (models/latest.json) to compare with", file=sys.stderr)
        return None
    manifest = artifacts.read_manifest(store, pointer.version)
    train = manifest.training_data["train"]
    files = extract.list_inputs(paths)
    if not files:
        raise RuntimeError(f"no CSV files found in {paths}")
    typed = []
    for f in files:
        header = extract.read_header(f)
        contract.check_header(header)
        typed.append(transform.typed_with_castability(extract.read_csv(spark, f, header)))
    order = {f.name: i for i, f in enumerate(files)}
    curated = transform.curated_transactions(reduce(lambda a, b: a.unionByName(b), typed), order)
    current = spark_features(curated, resolve_key(settings, store)).cache()
    try:
        feats = spark.table(f"`{settings.catalog_database}`.`{FEATURES_TABLE}`")
        ts = F.col("trans_date_trans_time")
        reference = feats.where(
            (ts >= F.lit(train.start).cast("timestamp")) & (ts <= F.lit(train.end).cast("timestamp"))
        )
        kinds = {n: k for n, k in FEATURE_KINDS.items() if n in feats.columns}
        result = D.compare_spark(reference, current, kinds, settings)
        rng = current.agg(F.min(ts).alias("lo"), F.max(ts).alias("hi"), F.count(F.lit(1)).alias("n")).first()
    finally:
        current.unpersist()
    meta = {
        "kind": "on-demand",
        "note": "card-history features of the new files are computed from those files alone",
        "champion_version": pointer.version,
        "reference": {"what": "champion training period", "start": train.start, "end": train.end},
        "current": {
            "what": "new files",
            "files": [f.name for f in files],
            "start": str(rng["lo"]),
            "end": str(rng["hi"]),
            "rows": int(rng["n"]),
        },
    }
    key = D.write_report(store, f"{D.REPORTS}/ondemand-{_stamp()}", result, meta)
    return D.summary_for_record(result, key, current=meta["current"])


def _run_files(args, settings, store) -> dict[str, Any] | None:
    spark = _local_spark(settings, store)
    try:
        return files_drift(spark, settings, store, args.paths)
    finally:
        spark.stop()


def run(args: argparse.Namespace) -> int:
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    settings = get_settings()
    store = store_from_settings(settings)
    if args.live == bool(args.paths):
        print("drift: give CSV PATH(s) or --live (one of them)", file=sys.stderr)
        return 2
    summary = _run_live(args, settings, store) if args.live else _run_files(args, settings, store)
    if summary is None:
        return 2
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    where = store.uri(summary["report"].rsplit("/", 1)[0] + "/report.html")
    if summary["drift_found"]:
        print(f"drift: DRIFT FOUND in {', '.join(summary['features'])} - report {where}")
        return EXIT_DRIFT
    print(f"drift: no drift found - report {where}")
    return 0
