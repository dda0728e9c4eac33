"""Experiment tracking and model registry (MLflow). Used by the training job only; the API never needs it.

Where runs go:

* embedded default: ``sqlite:///<store>/state/mlflow.db`` (a local SQLite tracking + registry store, no
  server), artifacts under ``<store>/mlflow-artifacts/``; ``fraud mlflow-ui`` opens the UI on 127.0.0.1;
* AWS / anywhere else: ``FRAUD_TRACKING_URI`` (a self-hosted MLflow server, or a SageMaker managed
  MLflow tracking server ARN with the ``sagemaker-mlflow`` plugin installed); the server's own artifact
  store is used. On an ``s3://`` store without ``FRAUD_TRACKING_URI`` tracking is skipped (a local
  SQLite file would vanish with the Glue worker).

Every training run becomes one MLflow run (named after the training run id) holding its parameters,
data ranges and row counts, validation results, every evaluation metric, the report, the manifest, the
drift report and the model (serialised with skops; cloudpickle if skops cannot write the estimator).
The model is registered as a new version of ``settings.registered_model_name``, tagged with the
artifact version; the alias ``champion`` always sits on the version ``models/latest.json`` points to,
``challenger`` on the latest rejected candidate (``sync_champion`` re-aligns after the fact).

Functions raise ``TrackingError`` (or MLflow's own errors); the training job catches them and logs
"tracking skipped: ..." so a tracking outage never fails a run.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from fraud_detection import artifacts, layout
from fraud_detection.storage import LocalStore, Store

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
VERSION_TAG = "fraud_version"  # model-version tag: the artifact version (models/<version>/)
ARTIFACTS_KEY = "mlflow-artifacts"


class TrackingError(RuntimeError):
    """Tracking is not possible (no tracking store configured, server unreachable, ...)."""


def redact(uri: str) -> str:
    """A tracking URI without credentials, for logs."""
    return re.sub(r"//[^/@]+@", "//***@", uri)


def resolve_tracking_uri(settings, store: Store) -> str:
    if settings.tracking_uri:
        return settings.tracking_uri
    if isinstance(store, LocalStore):
        db = store.path(layout.STATE) / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db}"
    raise TrackingError("the store is not local and FRAUD_TRACKING_URI is not set: no tracking store to write to")


def _artifact_location(settings, store: Store) -> str | None:
    if settings.tracking_uri:
        return None  # a server decides where its artifacts live
    if isinstance(store, LocalStore):
        return store.path(ARTIFACTS_KEY).as_uri()
    return store.uri(ARTIFACTS_KEY)


def client(settings, store: Store):
    """An MlflowClient on the configured tracking + registry store, with bounded HTTP retries."""
    if not settings.tracking_enabled:
        raise TrackingError("tracking is disabled (FRAUD_TRACKING_ENABLED=false)")
    uri = resolve_tracking_uri(settings, store)
    # MLflow reads these per request; by default it retries for minutes against a dead server (set from settings).
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.tracking_timeout_s)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.tracking_max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(c, settings, store: Store) -> str:
    exp = c.get_experiment_by_name(settings.tracking_experiment)
    if exp is not None:
        return exp.experiment_id
    return c.create_experiment(settings.tracking_experiment, artifact_location=_artifact_location(settings, store))


def _flat_numbers(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, (int, float)):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _flat_numbers(f"{prefix}.{k}" if prefix else str(k), v, out)


def _metric_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def _requirements(fmt: str) -> list[str]:
    """Pinned explicitly: MLflow would otherwise load the model in a subprocess to infer them."""
    from importlib.metadata import version

    libs = artifacts.library_versions()
    reqs = [f"scikit-learn=={libs['scikit-learn']}", f"numpy=={libs['numpy']}"]
    return (
        [*reqs, f"skops=={version('skops')}"] if fmt == "skops" else [*reqs, f"cloudpickle=={version('cloudpickle')}"]
    )


def _log_model(model: Any) -> tuple[Any, str]:
    import mlflow.sklearn

    try:
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            pip_requirements=_requirements("skops"),
        )
        return info, "skops"
    except Exception as exc:  # a custom estimator skops cannot write
        log.warning("skops could not serialise the model; logging it with cloudpickle", extra={"error": str(exc)})
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            pip_requirements=_requirements("cloudpickle"),
        )
        return info, "cloudpickle"


def _download_prefix(store: Store, prefix: str, dest: Path) -> Path | None:
    """A store folder as a local directory (itself for a local store, a temp copy from S3)."""
    local = store.local_dir(prefix)
    if local is not None:
        return local if local.is_dir() else None
    objs = store.list(prefix + "/")
    if not objs:
        return None
    for o in objs:
        store.download(o.key, dest / o.key[len(prefix) + 1 :])
    return dest


def log_training_run(
    c,
    settings,
    store: Store,
    *,
    record,
    manifest: artifacts.Manifest,
    metrics: dict,
    report_html: str,
    model: Any,
    promoted: bool,
) -> dict[str, Any]:
    """One MLflow run for one training run: params, data, validation, metrics, report, drift, model."""
    import mlflow

    exp_id = _experiment_id(c, settings, store)
    tags = {
        "fraud.run_id": record.run_id,
        "fraud.version": manifest.version,
        "fraud.trigger": record.trigger,
        "fraud.promoted": str(promoted).lower(),
        "fraud.promotion_reason": (manifest.promotion.reason if manifest.promotion else "")[:4000],
        "fraud.model_sha256": manifest.model_sha256,
    }
    drift = record.extra.get("drift") or {}
    if drift:
        tags["fraud.drift_found"] = str(bool(drift.get("drift_found"))).lower()
    with mlflow.start_run(experiment_id=exp_id, run_name=record.run_id, tags=tags) as run:
        params: dict[str, Any] = {
            "model_type": manifest.model_type,
            "version": manifest.version,
            "code_version": manifest.code_version,
            "trigger": record.trigger,
            "threshold": manifest.threshold.value,
            "threshold_method": manifest.threshold.method[:500],
            "n_features": len(manifest.features),
            "features": ",".join(f.name for f in manifest.features)[:6000],
            "input_files": len(record.inputs),
            "test_months": settings.test_months,
            "validation_months": settings.validation_months,
            "max_training_rows": settings.max_training_rows,
            "random_seed": settings.random_seed,
            "min_roc_auc": settings.min_roc_auc,
            "min_pr_auc": settings.min_pr_auc,
            "promotion_tolerance": settings.promotion_tolerance,
            **{f"library.{k}": v for k, v in manifest.libraries.items()},
        }
        for split_name, sc in manifest.training_data.items():
            params[f"data.{split_name}.start"] = sc.start
            params[f"data.{split_name}.end"] = sc.end
        mlflow.log_params(params)

        numbers: dict[str, float] = {}
        for split_name, sc in manifest.training_data.items():
            numbers[f"rows.{split_name}"] = sc.rows
            numbers[f"frauds.{split_name}"] = sc.frauds
        _flat_numbers("", {k: v for k, v in metrics.items() if k not in ("splits",)}, numbers)
        _flat_numbers("sample", manifest.training_sample, numbers)
        _flat_numbers("seconds", record.timings_s, numbers)
        numbers["validation.accepted_files"] = len(record.accepted_files)
        numbers["validation.quarantined_files"] = len(record.quarantined_files)
        numbers["promoted"] = float(promoted)
        if drift:
            numbers["drift.found"] = float(bool(drift.get("drift_found")))
            numbers["drift.features"] = float(len(drift.get("features") or []))
        mlflow.log_metrics({_metric_name(k): v for k, v in numbers.items() if v == v})  # NaN dropped

        mlflow.log_dict(
            {
                "accepted_files": record.accepted_files,
                "quarantined_files": record.quarantined_files,
                "validation_docs": record.extra.get("validation_docs"),
                "reasons": _quarantine_reasons(store, record.quarantined_files),
            },
            "validation/validation.json",
        )
        mlflow.log_text(report_html, "report/report.html")
        mlflow.log_dict(metrics, "report/metrics.json")
        mlflow.log_text(manifest.model_dump_json(indent=2), "report/manifest.json")
        mlflow.log_dict(record.model_dump(mode="json"), "report/run_record.json")
        if drift.get("report"):
            prefix = drift["report"].rsplit("/", 1)[0]
            with tempfile.TemporaryDirectory() as tmp:
                local = _download_prefix(store, prefix, Path(tmp))
                if local is not None:
                    mlflow.log_artifacts(str(local), "drift")
        info, fmt = _log_model(model)
        mlflow.set_tag("fraud.model_serialization", fmt)
        return {"run_id": run.info.run_id, "experiment_id": exp_id, "model_uri": info.model_uri, "serialization": fmt}


def _quarantine_reasons(store: Store, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys[:50]:
        for cand in (f"{k}.reason.json", k if k.endswith(".reason.json") else None):
            if cand and store.head(cand) is not None:
                try:
                    out[k] = json.loads(store.read_bytes(cand))
                except ValueError:
                    pass
                break
    return out


def register_version(c, settings, *, model_uri: str, run_id: str, manifest: artifacts.Manifest, promoted: bool):
    """A new version of the registered model, tagged with the artifact version and sha256."""
    from mlflow.exceptions import MlflowException

    name = settings.registered_model_name
    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description="Credit-card fraud model; alias 'champion' = models/latest.json")
    mv = c.create_model_version(
        name,
        source=model_uri,
        run_id=run_id,
        tags={
            VERSION_TAG: manifest.version,
            "model_sha256": manifest.model_sha256,
            "model_type": manifest.model_type,
            "promoted": str(promoted).lower(),
            "roc_auc": str(manifest.metrics.get("roc_auc")),
            "pr_auc": str(manifest.metrics.get("pr_auc")),
        },
        description=(manifest.promotion.reason if manifest.promotion else "")[:4000],
    )
    return mv


def find_model_version(c, name: str, fraud_version: str):
    """The registered version carrying ``fraud_version`` (newest if several), or None."""
    found = [mv for mv in c.search_model_versions(f"name='{name}'") if mv.tags.get(VERSION_TAG) == fraud_version]
    return max(found, key=lambda mv: int(mv.version)) if found else None


def _alias_version(c, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(name, alias).version
    except MlflowException:
        return None


def sync_champion(c, settings, store: Store) -> str | None:
    """Put ``champion`` on the registered version of ``models/latest.json``; remove it if that version
    was never registered (tracking was down when it was trained), so the registry never names a stale
    champion. Returns the registered version number or None."""
    name = settings.registered_model_name
    pointer = artifacts.read_latest(store)
    mv = find_model_version(c, name, pointer.version) if pointer else None
    if mv is None:
        if _alias_version(c, name, CHAMPION) is not None:
            c.delete_registered_model_alias(name, CHAMPION)
        if pointer is not None:
            log.warning(
                "registry has no version for the published model; alias 'champion' removed",
                extra={"latest": pointer.version},
            )
        return None
    c.set_registered_model_alias(name, CHAMPION, mv.version)
    if _alias_version(c, name, CHALLENGER) == mv.version:
        c.delete_registered_model_alias(name, CHALLENGER)
    return mv.version


def track_training_run(
    settings,
    store: Store,
    *,
    record,
    manifest: artifacts.Manifest,
    metrics: dict,
    report_html: str,
    model: Any,
    promoted: bool,
) -> dict[str, Any]:
    """Log the run, register its model, set the aliases (after ``latest.json`` was written)."""
    c = client(settings, store)
    uri = resolve_tracking_uri(settings, store)
    try:
        c.search_experiments(max_results=1)  # fail fast (bounded retries) if the server is unreachable
    except Exception as exc:
        raise TrackingError(f"tracking server {redact(uri)} unreachable: {type(exc).__name__}: {exc}") from exc
    logged = log_training_run(
        c,
        settings,
        store,
        record=record,
        manifest=manifest,
        metrics=metrics,
        report_html=report_html,
        model=model,
        promoted=promoted,
    )
    mv = register_version(
        c, settings, model_uri=logged["model_uri"], run_id=logged["run_id"], manifest=manifest, promoted=promoted
    )
    name = settings.registered_model_name
    if not promoted:
        c.set_registered_model_alias(name, CHALLENGER, mv.version)
    champion = sync_champion(c, settings, store)
    out = {
        "tracking_uri": redact(uri),
        "mlflow_run_id": logged["run_id"],
        "registered_model": name,
        "model_version": mv.version,
        "alias": CHAMPION if champion == mv.version else (CHALLENGER if not promoted else None),
        "champion_model_version": champion,
        "serialization": logged["serialization"],
    }
    log.info("training run tracked", extra={k: v for k, v in out.items() if k != "tracking_uri"})
    return out


def registry_state(settings, store: Store) -> dict[str, Any]:
    """Aliases and their artifact versions, as the registry has them (CLI, tests)."""
    c = client(settings, store)
    name = settings.registered_model_name
    out: dict[str, Any] = {"registered_model": name}
    for alias in (CHAMPION, CHALLENGER):
        v = _alias_version(c, name, alias)
        mv = c.get_model_version(name, v) if v else None
        out[alias] = {"model_version": v, VERSION_TAG: mv.tags.get(VERSION_TAG) if mv else None}
    return out
