"""Evaluation: score a period in Spark (the fitted model broadcast to the executors), then compute
metrics from a score histogram, so the driver holds at most ``SCORE_BINS`` rows whatever the data size.

Scores are floored onto a grid of 1e-6 and thresholds are grid values, so "score >= threshold" means
the same thing here and at serving time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from fraud_detection.features import FEATURE_NAMES

SCORE_BINS = 1_000_000


def score_spark(df, model, id_cols: tuple[str, ...] = ("is_fraud",)):
    """DataFrame with feature columns -> DataFrame (id_cols..., score); predict_proba runs in the executors."""
    import pandas as pd
    from pyspark.sql.types import DoubleType, StructField, StructType

    spark = df.sparkSession
    bc = spark.sparkContext.broadcast(model)
    feature_cols = list(FEATURE_NAMES)
    in_schema = df.select(*id_cols).schema
    out_schema = StructType([*in_schema.fields, StructField("score", DoubleType(), False)])

    def predict(batches):
        import os

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        m = bc.value
        for pdf in batches:
            if len(pdf) == 0:
                continue
            p = m.predict_proba(pdf[feature_cols].to_numpy(np.float64))[:, 1]
            yield pd.concat([pdf[list(id_cols)].reset_index(drop=True), pd.Series(p, name="score")], axis=1)

    return df.select(*id_cols, *feature_cols).mapInPandas(predict, out_schema)


@dataclass
class ScoreHistogram:
    """Distinct (floored) scores with the count of frauds and legit transactions at each."""

    score: np.ndarray
    pos: np.ndarray
    neg: np.ndarray

    @property
    def n_pos(self) -> int:
        return int(self.pos.sum())

    @property
    def n_neg(self) -> int:
        return int(self.neg.sum())

    def weighted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = np.concatenate([np.ones_like(self.pos), np.zeros_like(self.neg)])
        s = np.concatenate([self.score, self.score])
        w = np.concatenate([self.pos, self.neg]).astype(np.float64)
        keep = w > 0
        return y[keep], s[keep], w[keep]


def histogram(scored) -> ScoreHistogram:
    from pyspark.sql import functions as F

    rows = (
        scored.select((F.floor(F.col("score") * SCORE_BINS) / SCORE_BINS).alias("s"), "is_fraud")
        .groupBy("s")
        .agg(F.sum("is_fraud").alias("pos"), F.sum(1 - F.col("is_fraud")).alias("neg"))
        .orderBy("s")
        .collect()
    )
    return ScoreHistogram(
        np.array([r["s"] for r in rows], np.float64),
        np.array([r["pos"] for r in rows], np.int64),
        np.array([r["neg"] for r in rows], np.int64),
    )


def best_f1_threshold(h: ScoreHistogram) -> tuple[float, float]:
    """The grid threshold maximising F1 (on the validation period); returns (threshold, f1 there)."""
    order = np.argsort(-h.score)
    tp = np.cumsum(h.pos[order])
    fp = np.cumsum(h.neg[order])
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(h.n_pos, 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    i = int(np.argmax(f1))
    return float(h.score[order][i]), float(f1[i])


def confusion_at(h: ScoreHistogram, threshold: float) -> dict[str, int]:
    flagged = h.score >= threshold
    tp, fp = int(h.pos[flagged].sum()), int(h.neg[flagged].sum())
    return {"tp": tp, "fp": fp, "fn": h.n_pos - tp, "tn": h.n_neg - fp}


def recall_at_fpr(h: ScoreHistogram, max_fpr: float) -> float:
    y, s, w = h.weighted()
    fpr, tpr, _ = roc_curve(y, s, sample_weight=w)
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def metrics(h: ScoreHistogram, threshold: float) -> dict[str, Any]:
    if h.n_pos == 0 or h.n_neg == 0:
        raise ValueError("the test period needs both frauds and legit transactions to be evaluated")
    y, s, w = h.weighted()
    cm = confusion_at(h, threshold)
    precision = cm["tp"] / max(cm["tp"] + cm["fp"], 1)
    recall = cm["tp"] / max(cm["tp"] + cm["fn"], 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "roc_auc": float(roc_auc_score(y, s, sample_weight=w)),
        "pr_auc": float(average_precision_score(y, s, sample_weight=w)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "threshold": float(threshold),
        "recall_at_1pct_fpr": recall_at_fpr(h, 0.01),
        "recall_at_0_1pct_fpr": recall_at_fpr(h, 0.001),
        "confusion_matrix": {
            **cm,
            "layout": "[[tn, fp], [fn, tp]]",
            "matrix": [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]],
        },
    }


def pr_curve(h: ScoreHistogram) -> tuple[np.ndarray, np.ndarray]:
    y, s, w = h.weighted()
    precision, recall, _ = precision_recall_curve(y, s, sample_weight=w)
    return recall, precision
