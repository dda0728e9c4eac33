"""The training job: extract -> validate -> load tables -> features -> split -> train -> evaluate -> publish.

``run_training`` is the one entry point used by the CLI (local Spark), the local retraining launcher and
the AWS Glue job; it takes a SparkSession it did not build, so the engine is the caller's choice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import reduce
from typing import Any

from fraud_detection import artifacts, contract, layout
from fraud_detection.card_key import resolve_key
from fraud_detection.features import FEATURE_NAMES, MAX_WINDOW_S, spark_base_columns, spark_features
from fraud_detection.layout import FEATURES_TABLE, HISTORY_SNAPSHOT, TRANSACTIONS_TABLE
from fraud_detection.logs import redact_card_numbers
from fraud_detection.models import model_feature_importances
from fraud_detection.runs import RunRecord, new_run_id, save_run
from fraud_detection.settings import Settings
from fraud_detection.storage import Store
from spark_jobs import evaluate, extract, load, report, split, train, transform
from spark_jobs.validate import ContractValidator, quarantine

log = logging.getLogger(__name__)

HEADLINE = ("roc_auc", "pr_auc", "precision", "recall", "f1", "threshold", "recall_at_1pct_fpr", "recall_at_0_1pct_fpr")


class RunFailed(RuntimeError):
    """The run could not produce a model; ``latest`` is untouched."""


@dataclass
class TrainRequest:
    inputs: list[str]
    test_from: date | None = None
    model: str | None = None  # default: settings.model
    compare: list[str] = field(default_factory=list)
    trigger: str = "manual"
    run_id: str | None = None


@dataclass
class RunResult:
    record: RunRecord
    manifest: artifacts.Manifest | None = None

    @property
    def promoted(self) -> bool:
        return bool(self.record.promotion and self.record.promotion.get("promoted"))


class _Stages:
    def __init__(self, record: RunRecord) -> None:
        self.record = record

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        log.info("stage started", extra={"stage": name, "run_id": self.record.run_id})
        yield
        self.record.timings_s[name] = round(time.monotonic() - t0, 2)
        log.info("stage done", extra={"stage": name, "seconds": self.record.timings_s[name]})


def run_training(spark, settings: Settings, store: Store, request: TrainRequest) -> RunResult:
    record = RunRecord(
        run_id=request.run_id or new_run_id(),
        trigger=request.trigger,
        status="running",
        started_at=artifacts.utc_now(),
        inputs=list(request.inputs),
    )
    save_run(store, record)
    try:
        result = _run(spark, settings, store, request, record)
    except Exception as exc:
        record.status = "failed"
        record.error = redact_card_numbers(f"{type(exc).__name__}: {exc}")
        record.finished_at = artifacts.utc_now()
        save_run(store, record)
        log.error("training run failed; latest unchanged", extra={"run_id": record.run_id, "error": record.error})
        raise
    record.finished_at = artifacts.utc_now()
    save_run(store, record)
    return result


def _run(spark, settings: Settings, store: Store, request: TrainRequest, record: RunRecord) -> RunResult:
    from pyspark.sql import functions as F

    stage = _Stages(record)
    model_type = request.model or settings.model
    db = settings.catalog_database
    key = resolve_key(settings, store)

    # --- extract + validate --------------------------------------------------------------------------
    with stage("validate"):
        typed_all, order = _validate_inputs(spark, store, request, record)

    # --- tables ------------------------------------------------------------------------------------
    with stage("transactions_table"):
        load.ensure_database(spark, db)
        curated = transform.curated_transactions(typed_all, order)
        load.write_table(curated, database=db, table=TRANSACTIONS_TABLE, path=store.spark_uri(layout.TRANSACTIONS_PATH))
        typed_all.unpersist()
    with stage("features_table"):
        tx = spark.table(f"`{db}`.`{TRANSACTIONS_TABLE}`")
        load.write_table(
            spark_features(tx, key), database=db, table=FEATURES_TABLE, path=store.spark_uri(layout.FEATURES_PATH)
        )
        feats = spark.table(f"`{db}`.`{FEATURES_TABLE}`")
    with stage("history_snapshot"):
        _write_history_snapshot(tx, key, store)

    # --- split ------------------------------------------------------------------------------------
    with stage("split"):
        bounds = feats.agg(
            F.min("trans_date_trans_time").alias("lo"), F.max("trans_date_trans_time").alias("hi")
        ).first()
        ts_split = split.choose_split(
            bounds["lo"], bounds["hi"], settings.test_months, settings.validation_months, request.test_from
        )
        fs = split.with_split(feats, ts_split)
        splits = _split_counts(fs)
        for name in ("train", "validation", "test"):
            if splits.get(name, {}).get("rows", 0) == 0:
                raise RunFailed(f"the {name} period is empty ({ts_split.describe()})")
        train_df = feats.filter(split.period(ts_split, "train"))
        val_df = feats.filter(split.period(ts_split, "validation"))
        test_df = feats.filter(split.period(ts_split, "test"))

    # --- drift: the champion's training period vs the rows after its data end (never fails the run) -----
    with stage("drift"):
        try:
            from spark_jobs import drift

            record.extra["drift"] = drift.drift_for_run(spark, settings, store, feats, record.run_id)
        except Exception as exc:
            log.warning(f"drift check skipped: {type(exc).__name__}: {exc}", extra={"run_id": record.run_id})
            record.extra["drift"] = {"drift_found": False, "features": [], "report": None, "skipped": str(exc)}
        save_run(store, record)

    # --- train + evaluate the candidate and its comparisons -----------------------------------------
    with stage("train_sample"):
        sample = train.collect_sample(
            train_df,
            splits["train"]["rows"],
            splits["train"]["frauds"],
            settings.max_training_rows,
            settings.random_seed,
        )
    results: dict[str, dict[str, Any]] = {}
    compare = [
        m
        for m in dict.fromkeys(
            [model_type, *request.compare, *([settings.model] if model_type != settings.model else [])]
        )
    ]
    for name in compare:
        with stage(f"fit_{name}"):
            t0 = time.monotonic()
            model = train.fit(name, sample, settings.random_seed)
            fit_s = time.monotonic() - t0
        with stage(f"evaluate_{name}"):
            val_h = evaluate.histogram(evaluate.score_spark(val_df, model))
            threshold, val_f1 = evaluate.best_f1_threshold(val_h)
            test_h = evaluate.histogram(evaluate.score_spark(test_df, model))
            m = evaluate.metrics(test_h, threshold)
            m["threshold_method"] = f"max F1 on the validation period (validation F1 {val_f1:.4f})"
        results[name] = {"model": model, "metrics": m, "test_hist": test_h, "fit_seconds": round(fit_s, 2)}
    chosen = results[model_type]
    model, m = chosen["model"], chosen["metrics"]
    metrics_doc = {k: m[k] for k in HEADLINE} | {
        "confusion_matrix": m["confusion_matrix"],
        "threshold_method": m["threshold_method"],
        "splits": splits,
        "comparison": {n: {k: r["metrics"][k] for k in HEADLINE} for n, r in results.items()},
    }

    # --- feature importance (bounded sample of the validation period) --------------------------------
    with stage("importance"):
        importances, method = _importances(model, val_df, splits["validation"], settings)

    # --- artifact ------------------------------------------------------------------------------------
    blob = artifacts.model_bytes(model)
    version = artifacts.new_version(blob)
    manifest = artifacts.Manifest(
        version=version,
        created_at=artifacts.utc_now(),
        code_version=artifacts.code_version(),
        model_type=model_type,
        training_data={k: artifacts.SplitCounts(**v) for k, v in splits.items()},
        training_sample=sample.describe() | {"max_training_rows": settings.max_training_rows},
        input_files=record.accepted_files,
        features=artifacts.feature_specs(),
        threshold=artifacts.Threshold(value=m["threshold"], method=m["threshold_method"]),
        metrics={k: m[k] for k in HEADLINE} | {"confusion_matrix": m["confusion_matrix"]},
        libraries=artifacts.library_versions(),
        model_sha256=artifacts.sha256_hex(blob),
    )
    with stage("promotion"):
        promotion = _decide_promotion(settings, store, m, test_df, ts_split)
    manifest.promotion = promotion
    html = report.render(
        version=version,
        model_type=model_type,
        metrics=m,
        splits=splits,
        curves={n: evaluate.pr_curve(r["test_hist"]) for n, r in results.items()},
        importances=importances,
        importance_method=method,
        comparison=[{"model": n, **r["metrics"], "fit_seconds": r["fit_seconds"]} for n, r in results.items()],
        promotion=promotion.model_dump(),
        validation_docs=record.extra.get("validation_docs"),
    )
    artifacts.save_artifact(
        store,
        version=version,
        model_blob=blob,
        manifest=manifest,
        metrics=metrics_doc,
        report_html=html,
        key=artifacts.signing_key(store, settings.model_signing_key),
    )
    record.version = version
    record.metrics = {k: m[k] for k in HEADLINE}
    record.promotion = promotion.model_dump()
    record.status = "succeeded" if promotion.promoted else "rejected"
    record.finished_at = artifacts.utc_now()
    save_run(store, record)  # final before the pointer moves: whoever sees the new latest finds its record done
    if promotion.promoted:
        artifacts.publish_latest(store, manifest)  # written last, in one atomic write
    # --- tracking: MLflow run + registered version; aliases follow latest.json (champion / challenger) --
    try:
        from fraud_detection import tracking

        record.extra["tracking"] = tracking.track_training_run(
            settings,
            store,
            record=record,
            manifest=manifest,
            metrics=metrics_doc,
            report_html=html,
            model=model,
            promoted=promotion.promoted,
        )
    except Exception as exc:  # a tracking outage never fails the run: the artifact is already published
        log.warning(f"tracking skipped: {type(exc).__name__}: {exc}", extra={"run_id": record.run_id})
        record.extra["tracking"] = {"skipped": f"{type(exc).__name__}: {exc}"}
    try:
        from fraud_detection import monitoring

        record.extra["quality_metrics"] = monitoring.publish_quality_metrics(settings, store, record.extra.get("drift"))
    except Exception as exc:
        log.warning(f"tracking skipped: quality metrics not published: {type(exc).__name__}: {exc}")
        record.extra["quality_metrics"] = {"published": False, "reason": f"{type(exc).__name__}: {exc}"}
    log.info(
        "training run finished",
        extra={"run_id": record.run_id, "version": version, "promoted": promotion.promoted, "reason": promotion.reason},
    )
    return RunResult(record=record, manifest=manifest)


def _write_history_snapshot(tx, key: str, store: Store) -> None:
    """Each card's transactions of the last ``MAX_WINDOW_S`` before the data end, as the online store keeps
    them (keyed card hash, time, amount, category), so ``fraud backfill-history`` can seed the API's card
    history: without it a new deployment would serve history features computed from an empty history."""
    from pyspark.sql import functions as F

    base = spark_base_columns(tx, key)
    end = base.agg(F.max("ts_s")).first()[0]
    (
        base.filter(F.col("ts_s") >= end - MAX_WINDOW_S)  # the windows include t - MAX_WINDOW_S
        .select("card_key", "trans_num", "ts_s", "amt", "category_idx")
        .coalesce(1)
        .write.mode("overwrite")
        .parquet(store.spark_uri(HISTORY_SNAPSHOT))
    )


def _validate_inputs(spark, store: Store, request: TrainRequest, record: RunRecord):
    """Check headers, then validate with great-expectations; returns (typed rows of accepted files, file order).

    All well-formed files are validated together in one suite run (great-expectations costs seconds per
    run, whatever the rows). Only when that fails is each file validated on its own, so a bad file is
    quarantined with its own reason and the good ones go on.
    """
    from pyspark.sql import functions as F

    files = extract.list_inputs(request.inputs)
    if not files:
        raise RunFailed(f"no CSV files found in {request.inputs}")
    parsed: list[tuple[extract.InputFile, Any]] = []
    for f in files:
        try:
            header = extract.read_header(f)
            contract.check_header(header)
        except Exception as exc:  # noqa: BLE001 - unreadable (gone, a FIFO, denied) or not a contract CSV
            error = str(exc) if isinstance(exc, contract.ContractError) else f"unreadable: {type(exc).__name__}: {exc}"
            reason = {"file": f.name, "error": error, "failed_expectations": []}
            record.quarantined_files.append(quarantine(store, f.uri, f.name, reason))
            continue
        parsed.append((f, transform.typed_with_castability(extract.read_csv(spark, f, header))))
    parsed = _readable_by_spark(parsed, store, record)
    if not parsed:
        raise RunFailed("no input file passed validation; see quarantine/")
    validator = ContractValidator(record.run_id)
    union = reduce(lambda a, b: a.unionByName(b), [df for _, df in parsed]).persist()
    together = validator.validate(union, parsed[0][0].name if len(parsed) == 1 else f"{len(parsed)} files")
    accepted = [f for f, _ in parsed]
    if not together.success:
        accepted = []
        for f, _ in parsed:
            one_file = union.filter(F.col("source_file") == f.name)
            outcome = together if len(parsed) == 1 else validator.validate(one_file, f.name)
            if outcome.success:
                accepted.append(f)
            else:
                reason = {"error": "failed data contract validation", **outcome.reason(), "file": f.name}
                record.quarantined_files.append(quarantine(store, f.uri, f.name, reason))
    record.accepted_files = [f.name for f in accepted]
    record.extra["validation_docs"] = validator.publish_docs(store, f"{layout.VALIDATION_REPORTS}/{record.run_id}")
    save_run(store, record)
    if not accepted:
        union.unpersist()
        raise RunFailed("no input file passed validation; see quarantine/")
    if len(accepted) < len(parsed):
        union = union.filter(F.col("source_file").isin([f.name for f in accepted]))
    return union, {f.name: i for i, f in enumerate(accepted)}


def _readable_by_spark(parsed: list, store: Store, record: RunRecord) -> list:
    """The files Spark can read. Reading is lazy, so a file Spark cannot open (a name Hadoop refuses, a file
    gone since its header was read) would otherwise fail the whole run at the first action; all are read
    in one job, and only when that fails each on its own, the failing ones quarantined with Spark's error."""
    if not parsed:
        return parsed
    try:
        reduce(lambda a, b: a.unionByName(b), [df for _, df in parsed]).count()
        return parsed
    except Exception:  # noqa: BLE001 - find which file(s)
        log.warning("an input file could not be read by Spark; reading each file on its own")
    ok = []
    for f, df in parsed:
        try:
            df.count()
        except Exception as exc:  # noqa: BLE001 - quarantined with its reason; the run goes on
            first = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
            reason = {"file": f.name, "error": f"Spark could not read it: {type(exc).__name__}: {first}"}
            record.quarantined_files.append(quarantine(store, f.uri, f.name, reason | {"failed_expectations": []}))
            continue
        ok.append((f, df))
    return ok


def _split_counts(fs) -> dict[str, dict[str, Any]]:
    from pyspark.sql import functions as F

    rows = (
        fs.groupBy("split")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum("is_fraud").alias("frauds"),
            F.min("trans_date_trans_time").alias("start"),
            F.max("trans_date_trans_time").alias("end"),
        )
        .collect()
    )
    out = {
        r["split"]: {
            "rows": int(r["rows"]),
            "frauds": int(r["frauds"] or 0),
            "start": str(r["start"]),
            "end": str(r["end"]),
        }
        for r in rows
    }
    return {k: out[k] for k in ("train", "validation", "test") if k in out}


def _importances(model, val_df, val_counts: dict[str, Any], settings: Settings) -> tuple[dict[str, float], str]:
    from sklearn.inspection import permutation_importance

    direct = model_feature_importances(model)
    if direct is not None:
        return direct, "impurity"
    sample = train.collect_sample(val_df, val_counts["rows"], val_counts["frauds"], 10_000, settings.random_seed)
    if sample.y.sum() == 0:
        return {n: 0.0 for n in FEATURE_NAMES}, "none (no fraud in the validation period)"
    r = permutation_importance(
        model,
        sample.X,
        sample.y,
        scoring="average_precision",
        n_repeats=2,
        random_state=settings.random_seed,
        sample_weight=sample.weight,
        n_jobs=1,
    )
    return {n: float(v) for n, v in zip(FEATURE_NAMES, r.importances_mean, strict=True)}, "permutation, PR-AUC drop"


def _decide_promotion(settings: Settings, store: Store, m: dict[str, Any], test_df, ts_split) -> artifacts.Promotion:
    """Floor first; then the challenger must be at least as good as the champion on this run's test period."""
    now = artifacts.utc_now()
    if m["roc_auc"] < settings.min_roc_auc or m["pr_auc"] < settings.min_pr_auc:
        return artifacts.Promotion(
            promoted=False,
            decided_at=now,
            reason=f"below the floor: roc_auc {m['roc_auc']:.4f} (min {settings.min_roc_auc}), "
            f"pr_auc {m['pr_auc']:.4f} (min {settings.min_pr_auc})",
        )
    pointer = artifacts.read_latest(store)
    if pointer is None:
        return artifacts.Promotion(promoted=True, decided_at=now, reason="no champion yet; above the floor")
    try:
        champ_manifest, champ_model = artifacts.load_model(
            store, pointer.version, artifacts.signing_key(store, settings.model_signing_key)
        )
    except artifacts.ArtifactError as exc:
        return artifacts.Promotion(
            promoted=True,
            decided_at=now,
            champion_version=pointer.version,
            reason=f"champion unusable ({exc}); challenger above the floor",
        )
    if [f.name for f in champ_manifest.features] != list(FEATURE_NAMES):
        return artifacts.Promotion(
            promoted=True,
            decided_at=now,
            champion_version=pointer.version,
            reason="champion uses another feature set and cannot be scored on this data; challenger above the floor",
        )
    champ = evaluate.metrics(
        evaluate.histogram(evaluate.score_spark(test_df, champ_model)), champ_manifest.threshold.value
    )
    tol = settings.promotion_tolerance
    better = m["pr_auc"] >= champ["pr_auc"] - tol
    verdict = "at least as good as" if better else "worse than"
    return artifacts.Promotion(
        promoted=better,
        decided_at=now,
        champion_version=pointer.version,
        reason=f"challenger pr_auc {m['pr_auc']:.4f} is {verdict} champion {champ['pr_auc']:.4f} "
        f"(tolerance {tol}) on the test period from {ts_split.test_from}",
    )
