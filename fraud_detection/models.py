"""The estimators the training job can fit; all keep scikit-learn's fit / predict_proba contract.

- ``hgb`` (default): HistGradientBoosting inside a Pipeline.
- ``rf``: a random forest (what one of the systems we replace used), for comparison.
- ``cluster``: KMeans on the card / cardholder profile, then one gradient-boosting model per cluster
  (what another source system did), for comparison.

Input to every model: a float64 matrix with columns in ``features.FEATURE_NAMES`` order.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.cluster import KMeans
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fraud_detection.features import FEATURE_NAMES

MODEL_TYPES = ("hgb", "rf", "cluster")
PROFILE_FEATURES = ("age_years", "gender_m", "city_pop", "mean_amt_30d", "n_30d")


def _hgb(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=250,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )


class ClusteredModel(ClassifierMixin, BaseEstimator):
    """KMeans on profile columns, one classifier per cluster (clusters without both classes use the global one)."""

    def __init__(self, n_clusters: int = 4, base_estimator=None, random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.base_estimator = base_estimator
        self.random_state = random_state

    def _profile(self, X: np.ndarray) -> np.ndarray:
        idx = [FEATURE_NAMES.index(n) for n in PROFILE_FEATURES]
        P = X[:, idx].astype(np.float64, copy=True)
        P[:, PROFILE_FEATURES.index("city_pop")] = np.log1p(np.maximum(P[:, PROFILE_FEATURES.index("city_pop")], 0))
        return P

    def fit(self, X, y, sample_weight=None):
        X, y = np.asarray(X, np.float64), np.asarray(y)
        self.classes_ = np.unique(y)
        self.scaler_ = StandardScaler().fit(self._profile(X))
        self.kmeans_ = KMeans(self.n_clusters, n_init=4, random_state=self.random_state)
        labels = self.kmeans_.fit_predict(self.scaler_.transform(self._profile(X)))
        base = self.base_estimator if self.base_estimator is not None else _hgb(self.random_state)
        self.global_ = clone(base).fit(X, y, sample_weight=sample_weight)
        self.models_ = {}
        for k in range(self.n_clusters):
            m = labels == k
            if m.sum() >= 200 and len(np.unique(y[m])) == 2:
                w = None if sample_weight is None else np.asarray(sample_weight)[m]
                self.models_[k] = clone(base).fit(X[m], y[m], sample_weight=w)
        return self

    def predict_proba(self, X):
        X = np.asarray(X, np.float64)
        labels = self.kmeans_.predict(self.scaler_.transform(self._profile(X)))
        out = self.global_.predict_proba(X)
        for k, model in self.models_.items():
            m = labels == k
            if m.any():
                out[m] = model.predict_proba(X[m])
        return out

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def build_model(model_type: str, seed: int = 0) -> Pipeline:
    if model_type == "hgb":
        est = _hgb(seed)
    elif model_type == "rf":
        est = RandomForestClassifier(
            n_estimators=100, min_samples_leaf=2, max_features="sqrt", n_jobs=-1, random_state=seed
        )
    elif model_type == "cluster":
        est = ClusteredModel(n_clusters=4, random_state=seed)
    else:
        raise ValueError(f"unknown model {model_type!r}; choose one of {MODEL_TYPES}")
    return Pipeline([("model", est)])


def model_feature_importances(pipeline: Pipeline) -> dict[str, float] | None:
    """Impurity importances where the model has them (RF); None otherwise (use permutation importance)."""
    est = pipeline[-1]
    imp = getattr(est, "feature_importances_", None)
    return None if imp is None else {n: float(v) for n, v in zip(FEATURE_NAMES, imp, strict=True)}
