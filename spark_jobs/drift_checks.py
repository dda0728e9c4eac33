"""The drift checks behind ``fraud drift`` and the scheduled live-drift Glue job.

* ``run_live_check``: the recent prediction log (score and every feature) vs the champion's test
  period. The champion's reference (scores and feature summaries, computed with Spark once) is cached
  under ``reports/drift/live-reference/<version>.json``, so later live checks need no Spark.
* ``files_drift``: new Kaggle-format CSV file(s) vs the champion's training period (features table).

Reports (JSON + HTML with per-feature plots) go to ``reports/drift/<ondemand|live>-<UTC timestamp>/``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fraud_detection import layout
from fraud_detection.features import FEATURE_KINDS, FEATURE_NAMES
from fraud_detection.prediction_log_reader import live_arrays, read_prediction_log, rows_with_features

LIVE_KINDS: dict[str, str] = {"score": "continuous", **FEATURE_KINDS}
LIVE_NOTE = (
    "score and every feature; the features come from the vector the API logged with each prediction, "
    "rows logged without one (older logs) count only for score, amount, and hour / weekday / night "
    "derived from the transaction time"
)
PROFILE_PREFIX = layout.LIVE_REFERENCE
PROFILE_FORMAT = 2  # 1: score / amount / time columns only; 2: score and every feature

SparkSessionFactory = Callable[[], AbstractContextManager[Any]]


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def build_live_profile(spark, settings, store, manifest, model) -> dict[str, Any]:
    """Summaries of the champion's test period: its score by the champion and every feature."""
    from pyspark.sql import functions as F

    from fraud_detection.layout import FEATURES_TABLE
    from spark_jobs import drift as D
    from spark_jobs.evaluate import score_spark

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
        manifest, model = artifacts.load_model(store, version, artifacts.signing_key(store, settings.model_signing_key))
        profile = build_live_profile(spark, settings, store, manifest, model)
    store.write_bytes(profile_key(version), json.dumps(profile).encode())
    return profile


def live_drift(
    settings, store, profile: dict[str, Any], rows: Sequence, *, hours: float, plots: bool = True
) -> dict[str, Any]:
    """Compare prediction-log rows with a reference profile; writes the report (``plots``: one PNG per
    compared column); returns the summary."""
    from fraud_detection import drift as D

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
    spark = local_spark(settings, store)
    try:
        yield spark
    finally:
        spark.stop()


# =================================================================================================
# Files: new CSVs vs the champion's training period
# =================================================================================================


def local_spark(settings, store):
    from fraud_detection.storage import LocalStore
    from spark_jobs.session import build_local_session

    if not isinstance(store, LocalStore):
        raise RuntimeError("local Spark needs a local store (on AWS run the drift check in the Glue job)")
    return build_local_session(settings, store.path(layout.STATE), app_name="fraud-drift")


def files_drift(spark, settings, store, paths: list[str]) -> dict[str, Any] | None:
    """New CSV file(s) / folder(s) vs the champion's training period; writes the report, returns the summary."""
    from functools import reduce

    from pyspark.sql import functions as F

    from fraud_detection import artifacts, contract
    from fraud_detection import drift as report
    from fraud_detection.card_key import resolve_key
    from fraud_detection.features import spark_features
    from fraud_detection.layout import FEATURES_TABLE
    from spark_jobs import drift as D
    from spark_jobs import extract, transform

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
    key = report.write_report(store, f"{report.REPORTS}/ondemand-{_stamp()}", result, meta)
    return report.summary_for_record(result, key, current=meta["current"])
