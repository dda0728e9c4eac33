"""The fast tree evaluator gives the trained pipeline's scores (to 1e-12; in practice bit for bit)."""

from __future__ import annotations

import numpy as np
import pytest
from factories import row_features
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from api.fast_model import PredictProbaScorer, TreeEnsembleScorer, check_agreement, compile_model
from fraud_detection import artifacts


@pytest.fixture(scope="module")
def data(rows):
    X = row_features(rows)
    y = np.array([int(r["is_fraud"]) for r in rows])
    return X, y


def test_published_model_scores_equal_predict_proba(store, data):
    _, model = artifacts.load_latest(store)
    scorer = compile_model(model)
    assert isinstance(scorer, TreeEnsembleScorer)
    X, _ = data
    want = model.predict_proba(X)[:, 1]
    got = scorer.predict_proba1(X)
    assert np.max(np.abs(got - want)) <= 1e-12
    singles = np.array([scorer.predict_proba1(X[i : i + 1])[0] for i in range(0, len(X), 7)])
    assert np.max(np.abs(singles - want[::7])) <= 1e-12


@pytest.mark.parametrize(
    "params",
    [
        {"max_iter": 120, "max_leaf_nodes": 63},
        {"max_iter": 40, "max_depth": 3},
        {"max_iter": 30, "max_leaf_nodes": 200},
    ],
)
def test_deep_and_shallow_trees_with_missing_values(data, params):
    X, y = data
    rng = np.random.default_rng(1)
    Xn = X.copy()
    Xn[rng.random(X.shape) < 0.05] = np.nan  # trains missing-value routes too
    model = Pipeline([("model", HistGradientBoostingClassifier(random_state=0, **params))]).fit(Xn, y)
    scorer = compile_model(model)
    assert scorer.kind == "hgb-compiled"
    assert check_agreement(model, scorer, Xn) <= 1e-12
    assert check_agreement(model, scorer, X) <= 1e-12
    for i in range(0, 400, 5):  # one row at a time, as /v1/score calls it
        assert scorer.predict_proba1(Xn[i : i + 1])[0] == model.predict_proba(Xn[i : i + 1])[0, 1]


def test_other_models_fall_back_to_predict_proba(data):
    X, y = data
    rf = Pipeline([("model", RandomForestClassifier(n_estimators=10, random_state=0))]).fit(X, y)
    assert isinstance(compile_model(rf), PredictProbaScorer)
    scaled = Pipeline([("scale", StandardScaler()), ("model", HistGradientBoostingClassifier(max_iter=10))]).fit(X, y)
    s = compile_model(scaled)  # a step before the trees: the tree walk would see unscaled inputs
    assert isinstance(s, PredictProbaScorer) and check_agreement(scaled, s, X[:50]) == 0.0


def test_check_agreement_catches_a_wrong_scorer(data, store):
    _, model = artifacts.load_latest(store)
    scorer = compile_model(model)
    scorer.baseline += 1e-6  # a subtly wrong evaluator must be caught before serving
    with pytest.raises(ValueError, match="differ"):
        check_agreement(model, scorer, data[0][:100])


def test_single_row_speed_is_far_below_predict_proba(store, data):
    import time

    _, model = artifacts.load_latest(store)
    scorer = compile_model(model)
    x = data[0][:1]
    t = time.perf_counter()
    for _ in range(200):
        scorer.predict_proba1(x)
    fast = (time.perf_counter() - t) / 200
    t = time.perf_counter()
    for _ in range(50):
        model.predict_proba(x)
    slow = (time.perf_counter() - t) / 50
    assert fast < slow / 3, (fast, slow)
