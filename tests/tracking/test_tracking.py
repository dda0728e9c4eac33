"""MLflow runs, registered versions and aliases in a local SQLite store, read back; registry and latest.json
agree after a promotion and after a rejection; an unreachable tracking server fails fast and loudly."""

from __future__ import annotations

import time

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from fraud_detection import artifacts, tracking
from tests.tracking.conftest import closed_port, make_candidate


def _track(settings, store, cand, promoted: bool):
    return tracking.track_training_run(
        settings,
        store,
        record=cand["record"],
        manifest=cand["manifest"],
        metrics=cand["metrics"],
        report_html=cand["report_html"],
        model=cand["model"],
        promoted=promoted,
    )


def _champion_tag(client, name):
    return client.get_model_version_by_alias(name, tracking.CHAMPION).tags[tracking.VERSION_TAG]


def test_default_tracking_uri_is_sqlite_under_the_store(settings, tracked_store):
    uri = tracking.resolve_tracking_uri(settings, tracked_store)
    assert uri == f"sqlite:///{tracked_store.path('state')}/mlflow.db"
    assert tracking.resolve_tracking_uri(settings.model_copy(update={"tracking_uri": "http://x:5000"}), None) == (
        "http://x:5000"
    )
    assert tracking.redact("https://user:secret@host/x") == "https://***@host/x"


def test_run_logged_registered_and_read_back_then_aliases_follow_latest(settings, tracked_store, monkeypatch):
    store = tracked_store
    # --- a promoted candidate: champion alias on it ---------------------------------------------
    first = make_candidate(store, promoted=True, seed=1)
    out = _track(settings, store, first, promoted=True)
    assert out["alias"] == tracking.CHAMPION and out["serialization"] == "skops"

    client = MlflowClient(tracking_uri=tracking.resolve_tracking_uri(settings, store))
    run = client.get_run(out["mlflow_run_id"])
    assert run.info.run_name == first["record"].run_id
    assert run.data.params["version"] == first["manifest"].version
    assert run.data.params["data.train.start"] == "2019-01-01 00:00:00"
    assert run.data.params["data.test.end"] == "2019-08-31 23:59:59"
    assert run.data.metrics["rows.train"] == 1000 and run.data.metrics["frauds.test"] == 4
    assert run.data.metrics["roc_auc"] == pytest.approx(0.95)
    assert run.data.metrics["confusion_matrix.tp"] == 3
    assert run.data.metrics["comparison.hgb.pr_auc"] == pytest.approx(0.8)
    assert run.data.metrics["validation.accepted_files"] == 1
    assert run.data.tags["fraud.promoted"] == "true"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.html", "report/metrics.json", "report/manifest.json"} <= logged
    assert [a.path for a in client.list_artifacts(run.info.run_id, "validation")] == ["validation/validation.json"]

    name = settings.registered_model_name
    assert _champion_tag(client, name) == artifacts.read_latest(store).version == first["manifest"].version
    # the registered model loads back (MLflow gates any deserialisation behind this flag) and predicts the same
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    loaded = mlflow.sklearn.load_model(f"models:/{name}@champion")
    X = np.random.default_rng(0).normal(size=(5, len(first["manifest"].features)))
    np.testing.assert_allclose(loaded.predict_proba(X), first["model"].predict_proba(X))

    # --- a rejected candidate: challenger on it, champion unchanged = latest.json ----------------------
    second = make_candidate(store, promoted=False, seed=2, pr_auc=0.5)
    out2 = _track(settings, store, second, promoted=False)
    assert out2["alias"] == tracking.CHALLENGER
    assert artifacts.read_latest(store).version == first["manifest"].version
    assert _champion_tag(client, name) == first["manifest"].version
    challenger = client.get_model_version_by_alias(name, tracking.CHALLENGER)
    assert challenger.tags[tracking.VERSION_TAG] == second["manifest"].version
    assert client.get_run(out2["mlflow_run_id"]).data.tags["fraud.promoted"] == "false"

    # --- the next promotion moves champion; registry state agrees with latest.json ---------------------
    third = make_candidate(store, promoted=True, seed=3)
    _track(settings, store, third, promoted=True)
    state = tracking.registry_state(settings, store)
    assert state["champion"][tracking.VERSION_TAG] == artifacts.read_latest(store).version == third["manifest"].version
    assert state["challenger"][tracking.VERSION_TAG] == second["manifest"].version
    versions = client.search_model_versions(f"name='{name}'")
    assert len(versions) == 3


def test_champion_alias_removed_when_latest_was_never_registered(settings, tracked_store):
    """A model published while tracking was down: the registry must not keep naming an older champion."""
    store = tracked_store
    make_candidate(store, promoted=True, seed=4)  # published, not tracked
    c = tracking.client(settings, store)
    assert tracking.sync_champion(c, settings, store) is None
    assert tracking.registry_state(settings, store)["champion"]["model_version"] is None


def test_unreachable_tracking_server_fails_fast_and_leaves_the_artifact(settings, tmp_path):
    from fraud_detection.storage import LocalStore

    store = LocalStore(tmp_path)
    cand = make_candidate(store, promoted=True)
    bad = settings.model_copy(update={"tracking_uri": f"http://127.0.0.1:{closed_port()}"})
    t0 = time.monotonic()
    with pytest.raises(tracking.TrackingError, match="unreachable"):
        _track(bad, store, cand, promoted=True)
    assert time.monotonic() - t0 < 60
    assert artifacts.load_latest(store)[0].version == cand["manifest"].version  # the artifact is untouched
