"""``drift``: data drift on demand.

* ``fraud drift PATH...``: new Kaggle-format CSV file(s) / folder(s) vs the champion's training period
  (read from the features table), feature by feature. The new files' features are computed from those
  files alone, so card-history features see only the history inside them.
* ``fraud drift --live``: the recent prediction log vs the champion's test period: the model **score**
  and **every feature** (``features.FEATURE_KINDS``, each with the test of its kind). The API logs the
  served feature vector with each prediction; rows logged without one (older logs) still count for the
  columns every row keeps: score, amount and the transaction time (-> hour, weekday, is_night). The
  champion's test-period reference (scores and feature summaries, computed with Spark once) is cached
  under ``reports/drift/live-reference/<version>.json``, so later live checks need no Spark.
  ``run_live_check`` is the whole check; the scheduled AWS job (``glue/live_drift_job.py``) calls it too.

Reports (JSON + HTML with per-feature plots) go to ``reports/drift/<ondemand|live>-<UTC timestamp>/``.
Exit code: 0 no drift, 3 drift found, 1 failure, 2 nothing to compare.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from fraud_detection.features import FEATURE_KINDS, FEATURE_NAMES

NAME = "drift"
HELP = (
    "Drift report: new CSV file(s)/folder vs the champion's training data, or --live: the recent prediction "
    "log (score and every feature) vs the champion's test period. Exit 3 when drift is found."
)

# Columns every logged prediction has (the score, the amount, and what the transaction time gives).
LOG_COLUMNS = ("score", "amt", "hour", "weekday", "is_night")
LIVE_KINDS: dict[str, str] = {"score": "continuous", **FEATURE_KINDS}
LIVE_NOTE = (
    "score and every feature; the features come from the vector the API logged with each prediction, "
    "rows logged without one (older logs) count only for score, amount, and hour / weekday / night "
    "derived from the transaction time"
)
PROFILE_PREFIX = "reports/drift/live-reference"
PROFILE_FORMAT = 2  # 1: score / amount / time columns only; 2: score and every feature
MAX_SCAN_PAGES = 10_000  # DynamoDB scan pages (each up to 1 MB) read at most
EXIT_DRIFT = 3

SparkSessionFactory = Callable[[], AbstractContextManager[Any]]


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


class LoggedPrediction(NamedTuple):
    """What live drift reads of one logged prediction."""

    trans_time: str
    amt: float | None
    score: float
    features: list[float] | None = None  # FEATURE_NAMES order; None for rows logged without a vector
    logged_at: str = ""


def read_prediction_log(
    settings, store, since: datetime, max_rows: int, *, page_size: int | None = None
) -> list[LoggedPrediction]:
    """Predictions logged since ``since``, newest first, at most ``max_rows``.

    SQLite: the newest ``max_rows``. DynamoDB: a scan filtered on ``logged_at``, page by page
    (``page_size`` items per page, default DynamoDB's 1 MB), stopping once ``max_rows`` are read; the
    scan runs in the hash order of the random prediction ids, so the bound keeps a uniform sample of
    the window rather than its newest rows.
    """
    cutoff = since.isoformat(timespec="milliseconds")
    if settings.kv_backend == "dynamodb":
        return _read_dynamodb(settings, cutoff, max_rows, page_size)
    return _read_sqlite(settings, store, cutoff, max_rows)


def _read_sqlite(settings, store, cutoff: str, max_rows: int) -> list[LoggedPrediction]:
    from fraud_detection.card_history import state_dir
    from fraud_detection.prediction_log import decode_features, has_features_column

    path = state_dir(settings, store) / "prediction_log.sqlite"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        vector = "features" if has_features_column(conn) else "NULL"  # a log no API has migrated yet
        rows = conn.execute(
            f"SELECT trans_time, amt, score, {vector}, logged_at FROM prediction_log"  # noqa: S608
            " WHERE logged_at >= ? ORDER BY logged_at DESC LIMIT ?",
            (cutoff, max_rows),
        ).fetchall()
    finally:
        conn.close()
    return [LoggedPrediction(t, a, s, decode_features(f), at) for t, a, s, f, at in rows]


_SCAN_NAMES = {"#t": "trans_time", "#a": "amt", "#s": "score", "#f": "features", "#l": "logged_at"}


def _scan_request(table: str, cutoff: str, page_size: int | None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#l >= :c",
        "ExpressionAttributeNames": _SCAN_NAMES,
        "ExpressionAttributeValues": {":c": {"S": cutoff}},
        "ProjectionExpression": ", ".join(_SCAN_NAMES),
    }
    if page_size:
        request["Limit"] = page_size
    return request


def _from_item(item: dict[str, Any]) -> LoggedPrediction | None:
    from fraud_detection.prediction_log import decode_features

    if "trans_time" not in item or "score" not in item:
        return None
    return LoggedPrediction(
        trans_time=item["trans_time"]["S"],
        amt=float(item["amt"]["N"]) if "amt" in item else None,
        score=float(item["score"]["N"]),
        features=decode_features(item.get("features", {}).get("S")),
        logged_at=item.get("logged_at", {}).get("S", ""),
    )


def _read_dynamodb(settings, cutoff: str, max_rows: int, page_size: int | None) -> list[LoggedPrediction]:
    import boto3

    client = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
    request = _scan_request(settings.prediction_log_table, cutoff, page_size)
    out: list[LoggedPrediction] = []
    for _ in range(MAX_SCAN_PAGES):
        page = client.scan(**request)
        out.extend(r for r in map(_from_item, page.get("Items", [])) if r is not None)
        if len(out) >= max_rows or "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    out.sort(key=lambda r: r.logged_at, reverse=True)
    return out[:max_rows]


def live_arrays(rows: Sequence[Sequence[Any]]) -> dict[str, np.ndarray]:
    """Logged rows ``(trans_time, amt, score[, features])`` -> one array per live column.

    ``LOG_COLUMNS`` come from every row (hour / weekday / night as the features define them); every
    other feature only from the rows that carry a vector of the current ``FEATURE_NAMES`` length.
    """
    from fraud_detection.features import NIGHT_END_HOUR, NIGHT_START_HOUR, parse_timestamp

    hour, weekday, amt, score, vectors = [], [], [], [], []
    for row in rows:
        try:
            t = parse_timestamp(row[0])
        except (TypeError, ValueError):
            continue
        hour.append(t.hour)
        weekday.append(t.weekday())
        amt.append(np.nan if row[1] is None else float(row[1]))
        score.append(float(row[2]))
        vector = row[3] if len(row) > 3 else None
        if vector is not None and len(vector) == len(FEATURE_NAMES):
            vectors.append(vector)
    h = np.asarray(hour, np.float64)
    out = {
        "score": np.asarray(score, np.float64),
        "amt": np.asarray(amt, np.float64),
        "hour": h,
        "weekday": np.asarray(weekday, np.float64),
        "is_night": ((h >= NIGHT_START_HOUR) | (h < NIGHT_END_HOUR)).astype(np.float64),
    }
    matrix = np.asarray(vectors, np.float64).reshape(len(vectors), len(FEATURE_NAMES))
    for i, name in enumerate(FEATURE_NAMES):
        out.setdefault(name, matrix[:, i])
    return out


def rows_with_features(data: dict[str, np.ndarray]) -> int:
    """How many rows of ``live_arrays`` output carried a feature vector."""
    vector_only = [n for n in FEATURE_NAMES if n not in LOG_COLUMNS]
    return int(data[vector_only[0]].size) if vector_only else 0


def build_live_profile(spark, settings, store, manifest, model) -> dict[str, Any]:
    """Summaries of the champion's test period: its score by the champion and every feature."""
    from pyspark.sql import functions as F

    from spark_jobs import drift as D
    from spark_jobs.evaluate import score_spark
    from spark_jobs.pipeline import FEATURES_TABLE

    test = manifest.training_data["test"]
    feats = spark.table(f"`{settings.catalog_database}`.`{FEATURES_TABLE}`")
    ts = F.col("trans_date_trans_time")
    period = feats.where((ts >= F.lit(test.start).cast("timestamp")) & (ts <= F.lit(test.end).cast("timestamp")))
    # score_spark keeps id columns beside the features it scores: the features ride along under other names
    ids = tuple(f"ref_{n}" for n in FEATURE_NAMES)
    src = period.select(*[F.col(n).alias(f"ref_{n}") for n in FEATURE_NAMES], *FEATURE_NAMES)
    scored = score_spark(src, model, id_cols=ids).select(
        "score", *[F.col(i).cast("double").alias(i.removeprefix("ref_")) for i in ids]
    )
    edges = D.reference_edges_spark(scored, LIVE_KINDS, settings.drift_psi_bins)
    summaries = D.summarize_spark(
        scored,
        LIVE_KINDS,
        edges,
        max_distinct=settings.drift_max_distinct,
        sample_rows=settings.drift_sample_rows,
        seed=settings.random_seed,
    )
    return {
        "format": PROFILE_FORMAT,
        "model_version": manifest.version,
        "period": {"start": test.start, "end": test.end, "rows": test.rows},
        "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "summaries": {k: v.to_dict() for k, v in summaries.items()},
    }


def profile_key(version: str) -> str:
    return f"{PROFILE_PREFIX}/{version}.json"


def cached_profile(store, version: str) -> dict[str, Any] | None:
    """The cached reference profile of ``version``; None when absent or of an older format (rebuilt)."""
    key = profile_key(version)
    if store.head(key) is None:
        return None
    profile = json.loads(store.read_bytes(key))
    if profile.get("format") != PROFILE_FORMAT:
        print(f"drift: cached live reference {key} has an older format: rebuilding it", file=sys.stderr)
        return None
    return profile


def live_profile(settings, store, version: str, spark_session: SparkSessionFactory) -> dict[str, Any]:
    """The champion's reference profile: from the cache, else built with Spark once and cached."""
    from fraud_detection import artifacts

    profile = cached_profile(store, version)
    if profile is not None:
        return profile
    with spark_session() as spark:
        manifest, model = artifacts.load_model(store, version)
        profile = build_live_profile(spark, settings, store, manifest, model)
    store.write_bytes(profile_key(version), json.dumps(profile).encode())
    return profile


def live_drift(
    settings, store, profile: dict[str, Any], rows: Sequence, *, hours: float, plots: bool = True
) -> dict[str, Any]:
    """Compare prediction-log rows with a reference profile; writes the report (``plots``: one PNG per
    compared column); returns the summary."""
    from spark_jobs import drift as D

    ref = {k: D.Summary.from_dict(v) for k, v in profile["summaries"].items()}
    cur_data = live_arrays(rows)
    kinds = {k: s.kind for k, s in ref.items() if k in cur_data and cur_data[k].size}
    edges = {k: s.edges or [] for k, s in ref.items() if s.kind == "continuous"}
    cur = D.summarize_numpy(
        cur_data,
        kinds,
        edges,
        max_distinct=settings.drift_max_distinct,
        sample_rows=settings.drift_sample_rows,
        seed=settings.random_seed,
    )
    result = D.compare(
        ref, cur, alpha=settings.drift_alpha, min_psi=settings.drift_min_psi, psi_bins=settings.drift_psi_bins
    )
    counts = {"rows": int(cur_data["score"].size), "rows_with_features": rows_with_features(cur_data)}
    meta = {
        "kind": "live",
        "note": LIVE_NOTE,
        "champion_version": profile["model_version"],
        "reference": {"what": "champion test period", **profile["period"]},
        "current": {"what": f"prediction log, last {hours:g} h", **counts},
    }
    key = D.write_report(store, f"{D.REPORTS}/live-{_stamp()}", result, meta, plots=plots)
    return D.summary_for_record(
        result, key, note=LIVE_NOTE, current_rows=counts["rows"], rows_with_features=counts["rows_with_features"]
    )


def run_live_check(
    settings,
    store,
    *,
    hours: float,
    spark_session: SparkSessionFactory,
    now: datetime | None = None,
    plots: bool = True,
) -> dict[str, Any] | None:
    """The live check: champion, prediction log of the last ``hours``, reference profile, report.

    Returns the summary, or None when there is nothing to compare (no champion, fewer than 2 rows).
    ``spark_session`` opens a Spark session, used only when the champion's profile is not cached yet.
    """
    from fraud_detection import artifacts

    pointer = artifacts.read_latest(store)
    if pointer is None:
        print("drift: no champion (models/latest.json) to compare with", file=sys.stderr)
        return None
    since = (now or datetime.now(UTC)) - timedelta(hours=hours)
    rows = read_prediction_log(settings, store, since, settings.live_drift_max_rows)
    if len(rows) < 2:
        print(f"drift: {len(rows)} prediction(s) logged in the last {hours:g} h: nothing to compare", file=sys.stderr)
        return None
    profile = live_profile(settings, store, pointer.version, spark_session)
    return live_drift(settings, store, profile, rows, hours=hours, plots=plots)


@contextmanager
def local_spark_session(settings, store):
    """A local Spark session for one block (needs a local store)."""
    spark = _local_spark(settings, store)
    try:
        yield spark
    finally:
        spark.stop()


def _run_live(args, settings, store) -> dict[str, Any] | None:
    hours = args.hours or settings.live_drift_hours
    return run_live_check(settings, store, hours=hours, spark_session=lambda: local_spark_session(settings, store))


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
    from fraud_detection.features import spark_features
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
