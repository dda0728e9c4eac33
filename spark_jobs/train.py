"""Training: a bounded, weighted sample of the training period goes to the driver and is fitted there.

All frauds of the training period plus a uniform sample of the rest, so that at most
``max_training_rows`` rows are collected whatever the data size; sampled legit rows carry weight 1/f so
the sample stands for the population, and frauds are up-weighted so both classes weigh the same (class
imbalance).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fraud_detection.features import FEATURE_NAMES
from fraud_detection.models import build_model

log = logging.getLogger(__name__)


@dataclass
class TrainingSample:
    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    legit_fraction: float
    population_rows: int
    population_frauds: int

    def describe(self) -> dict:
        return {
            "rows_collected": int(len(self.y)),
            "frauds_collected": int(self.y.sum()),
            "legit_sampling_fraction": self.legit_fraction,
            "population_rows": self.population_rows,
            "population_frauds": self.population_frauds,
        }


def sample_for_driver(df, n_rows: int, n_frauds: int, max_rows: int, seed: int, fraud_cap: int | None = None):
    """DataFrame of one period -> (bounded sample DataFrame, legit sampling fraction)."""
    from pyspark.sql import functions as F

    n_legit = max(n_rows - n_frauds, 1)
    fraud_budget = min(n_frauds, fraud_cap if fraud_cap is not None else max_rows // 2)
    fraud_fraction = 1.0 if n_frauds == 0 else min(1.0, fraud_budget / n_frauds)
    legit_fraction = min(1.0, max(max_rows - fraud_budget, 1) / n_legit)
    sampled = df.filter(F.col("is_fraud") == 1)
    if fraud_fraction < 1.0:
        sampled = sampled.sample(fraction=fraud_fraction, seed=seed)
    legit = df.filter(F.col("is_fraud") == 0)
    if legit_fraction < 1.0:
        legit = legit.sample(fraction=legit_fraction, seed=seed)
    return sampled.unionByName(legit), legit_fraction, fraud_fraction


def collect_sample(df, n_rows: int, n_frauds: int, max_rows: int, seed: int) -> TrainingSample:
    sampled, legit_fraction, fraud_fraction = sample_for_driver(df, n_rows, n_frauds, max_rows, seed)
    pdf = sampled.select(*FEATURE_NAMES, "is_fraud").toPandas()
    X = pdf[list(FEATURE_NAMES)].to_numpy(np.float64)
    y = pdf["is_fraud"].to_numpy(np.int64)
    weight = np.where(y == 1, 1.0 / fraud_fraction, 1.0 / legit_fraction)
    pos, neg = weight[y == 1].sum(), weight[y == 0].sum()
    if pos > 0:
        weight[y == 1] *= neg / pos  # balance the classes
    log.info("training sample collected", extra={"rows": int(len(y)), "frauds": int(y.sum())})
    return TrainingSample(X, y, weight, legit_fraction, n_rows, n_frauds)


def fit(model_type: str, sample: TrainingSample, seed: int):
    if sample.y.sum() == 0:
        raise ValueError("the training period holds no fraud: nothing to learn from")
    model = build_model(model_type, seed)
    model.fit(sample.X, sample.y, model__sample_weight=sample.weight)
    return model
