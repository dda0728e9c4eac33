"""Test factories shared by the suites: generated rows, row-engine features, and a real model artifact.

``make_artifact`` builds what the training pipeline publishes, without Spark: features from the row
engine (each card's earlier rows as its history), a small HistGradientBoosting pipeline, a proper
manifest, saved with ``artifacts.save_artifact`` and (by default) published as ``models/latest.json``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import Pipeline

from fraud_detection import artifacts, features
from fraud_detection.storage import Store


def generated_rows(
    rows: int = 4000, cards: int = 150, seed: int = 7, *, months: int = 6, fraud_rate: float = 0.02
) -> list[dict[str, str]]:
    """Generated rows over a few months (dense enough that cards have 30-day history), several % fraud."""
    from datetime import date

    from tools.generator import generate_rows

    end = date(2019 + (months - 1) // 12, (months - 1) % 12 + 1, 28)
    return generate_rows(rows=rows, cards=cards, seed=seed, start=date(2019, 1, 1), end=end, fraud_rate=fraud_rate)


def sorted_rows(rows: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
    return sorted(rows, key=lambda r: (r["trans_date_trans_time"], r["trans_num"]))


def row_features(rows: Sequence[Mapping[str, str]]) -> np.ndarray:
    """Features of every row (in the given order) from the full in-memory history of its card."""
    by_card: dict[str, list[tuple[int, float, int]]] = defaultdict(list)
    for r in rows:
        by_card[str(r["cc_num"]).strip()].append(features.history_record(r))
    histories = {card: features.History.from_records(recs) for card, recs in by_card.items()}
    # The row engine looks only at a card's rows strictly before each transaction, so the whole
    # card history can be passed: that is the "true history" the serving path must reproduce.
    return np.array([features.transaction_features(r, histories[str(r["cc_num"]).strip()]) for r in rows])


def make_artifact(
    store: Store,
    rows: Sequence[Mapping[str, str]],
    *,
    seed: int = 0,
    max_iter: int = 50,
    publish: bool = True,
) -> artifacts.Manifest:
    rows = sorted_rows(rows)
    X = row_features(rows)
    y = np.array([int(r["is_fraud"]) for r in rows])
    if len(set(y.tolist())) < 2:
        raise ValueError("make_artifact needs rows with both classes")
    cut = int(len(rows) * 0.75)  # time-based: the newest quarter is the test period
    frauds = np.flatnonzero(y)
    if y[cut:].sum() == 0 or y[:cut].sum() == 0:  # keep both classes on both sides of the cut
        cut = int(frauds[len(frauds) // 2])
    model = Pipeline([("model", HistGradientBoostingClassifier(max_iter=max_iter, random_state=seed))])
    model.fit(X[:cut], y[:cut])
    p_test = model.predict_proba(X[cut:])[:, 1]
    both = len(set(y[cut:].tolist())) == 2
    test_metrics = {
        "roc_auc": float(roc_auc_score(y[cut:], p_test)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y[cut:], p_test)) if both else float("nan"),
    }
    blob = artifacts.model_bytes(model)
    version = artifacts.new_version(blob)
    ts = [r["trans_date_trans_time"] for r in rows]
    manifest = artifacts.Manifest(
        version=version,
        created_at=artifacts.utc_now(),
        code_version=artifacts.code_version(),
        model_type="hgb",
        training_data={
            "train": artifacts.SplitCounts(rows=cut, frauds=int(y[:cut].sum()), start=ts[0], end=ts[cut - 1]),
            "test": artifacts.SplitCounts(rows=len(rows) - cut, frauds=int(y[cut:].sum()), start=ts[cut], end=ts[-1]),
        },
        input_files=["/tmp/should-not-leak/landing/file.csv"],
        features=artifacts.feature_specs(),
        threshold=artifacts.Threshold(value=0.5, method="fixed by the test factory"),
        metrics={"test": {k: v for k, v in test_metrics.items() if v == v}},
        libraries=artifacts.library_versions(),
        model_sha256=artifacts.sha256_hex(blob),
    )
    artifacts.save_artifact(
        store,
        version=version,
        model_blob=blob,
        manifest=manifest,
        metrics=manifest.metrics,
        report_html="<html><body>test artifact</body></html>",
    )
    if publish:
        artifacts.publish_latest(store, manifest)
        time.sleep(0.002)  # distinct mtimes for back-to-back publishes (the local ETag includes mtime_ns)
    return manifest
