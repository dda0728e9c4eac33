"""Exact, single-threaded scoring of a fitted model: the trees of a HistGradientBoosting, compiled with numba.

scikit-learn's ``predict_proba`` costs hundreds of microseconds per row (input validation, OpenMP thread
start-up); the same trees walked by a numba-compiled loop cost microseconds (figures:
docs/benchmarks.md, "Figures behind the code") and give the same scores: the same comparisons
(``x <= threshold``, NaN follows ``missing_go_to_left``), the leaf values added tree by tree in the same
order to the same baseline, the same logistic link. ``compile_model`` returns this evaluator when the
model is a ``Pipeline`` whose only step is a binary ``HistGradientBoostingClassifier`` on numeric
features, and a plain ``predict_proba`` wrapper for anything else (random forest, custom classifiers).

Whoever loads a model checks the evaluator against ``predict_proba`` on probe rows (``check_agreement``)
before serving it. The compiled loop is cached on disk by numba (``NUMBA_CACHE_DIR`` where the package
directory is read-only), so only a process's first model load pays the compilation (about a second).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import numpy as np
from numba import njit
from scipy.special import expit


class Scorer(Protocol):
    kind: str

    def predict_proba1(self, X: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of a 2-D float64 array."""
        ...


class UnsupportedModel(ValueError):
    """The model is not one the tree evaluator can reproduce exactly."""


# One node in 16 bytes: ``info`` packs (left child << 17 | feature << 1 | NaN goes left), and is -1 for a
# leaf, whose ``thr`` holds the leaf value. A node's two children sit next to each other, so a walk
# touches one cache line per level instead of one per array (seven arrays in scikit-learn's layout).
NODE = np.dtype([("thr", np.float64), ("info", np.int64)])
_FEATURE_BITS = 16


@njit(cache=True, nogil=True)
def _raw_walk(X, nodes, roots, baseline, out):  # noqa: ANN001
    """scikit-learn's predictor loop: every row starts at the baseline and adds each tree's leaf, tree by
    tree in order (trees outside, rows inside: one tree's nodes stay in cache for the whole batch)."""
    for i in range(X.shape[0]):
        out[i] = baseline
    for t in range(roots.shape[0]):
        root = roots[t]
        for i in range(X.shape[0]):
            node = root
            info = nodes[node].info
            while info >= 0:
                x = X[i, (info >> 1) & 0xFFFF]
                # left when x <= threshold, or when x is NaN and NaN goes left: no branch to mispredict
                go_right = not (x <= nodes[node].thr or (x != x and (info & 1) == 1))
                node = (info >> 17) + go_right
                info = nodes[node].info
            out[i] += nodes[node].thr


def _pack_tree(nodes: np.ndarray, out: list[tuple[float, int]]) -> None:
    """Append one scikit-learn tree (its ``nodes`` record array, root first) to ``out`` in the packed
    layout: breadth first, so each internal node's children get the next two free slots, side by side."""
    offset = len(out)
    order = deque([0])
    slot_of = {0: offset}
    while order:
        node = order.popleft()
        rec = nodes[node]
        assert slot_of[node] == len(out)  # breadth first: nodes are placed in the order they got slots
        if rec["is_leaf"]:
            out.append((float(rec["value"]), -1))
            continue
        left, right = int(rec["left"]), int(rec["right"])
        slot_of[left] = offset + len(slot_of)
        slot_of[right] = offset + len(slot_of)
        order += [left, right]
        info = (slot_of[left] << 17) | (int(rec["feature_idx"]) << 1) | int(rec["missing_go_to_left"])
        out.append((float(rec["num_threshold"]), info))


class TreeEnsembleScorer:
    """Evaluates a binary HistGradientBoostingClassifier's trees with a compiled loop (numba)."""

    kind = "hgb-compiled"

    def __init__(self, clf: Any) -> None:
        if getattr(clf, "n_trees_per_iteration_", None) != 1 or list(getattr(clf, "classes_", [])) != [0, 1]:
            raise UnsupportedModel("only binary 0/1 HistGradientBoostingClassifier is supported")
        if getattr(clf, "_preprocessor", None) is not None:
            raise UnsupportedModel("models with an internal preprocessor are not supported")
        if getattr(clf, "is_categorical_", None) is not None and bool(np.any(clf.is_categorical_)):
            raise UnsupportedModel("native categorical features are not supported")
        if type(clf._loss).__name__ != "HalfBinomialLoss":
            raise UnsupportedModel(f"unsupported loss {type(clf._loss).__name__}")
        self.n_features = int(clf.n_features_in_)
        if self.n_features >= 1 << _FEATURE_BITS:
            raise UnsupportedModel(f"more than {(1 << _FEATURE_BITS) - 1} features")
        self.baseline = float(np.asarray(clf._baseline_prediction).ravel()[0])
        packed: list[tuple[float, int]] = []
        roots = []
        for iteration in clf._predictors:
            (pred,) = iteration
            nodes = pred.nodes
            if np.any(nodes["is_categorical"][~nodes["is_leaf"].astype(bool)]):
                raise UnsupportedModel("categorical splits are not supported")
            roots.append(len(packed))
            _pack_tree(nodes, packed)
        if not roots:
            raise UnsupportedModel("model has no trees")
        self.n_trees = len(roots)
        self._nodes = np.array(packed, dtype=NODE)
        self._roots = np.asarray(roots, np.int64)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw margin (log-odds) per row, equal to scikit-learn's ``_raw_predict``."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a 2-D array with {self.n_features} columns, got shape {X.shape}")
        out = np.empty(X.shape[0], np.float64)
        _raw_walk(X, self._nodes, self._roots, self.baseline, out)
        return out

    def predict_proba1(self, X: np.ndarray) -> np.ndarray:
        return expit(self.raw(X))


class PredictProbaScorer:
    """Any estimator with ``predict_proba``: the fallback for models the tree evaluator does not cover."""

    kind = "predict_proba"

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba1(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(np.asarray(X, dtype=np.float64))[:, 1], dtype=np.float64)


def _final_estimator(model: Any) -> tuple[Any, bool]:
    """The last step of a Pipeline and whether it is the only step (no preprocessing before it)."""
    steps = getattr(model, "steps", None)
    if steps is None:
        return model, True
    real = [est for _, est in steps if est not in (None, "passthrough")]
    return (real[-1] if real else model), len(real) == 1


def compile_model(model: Any) -> Scorer:
    """The fastest exact scorer for a fitted model: the tree evaluator if possible, else predict_proba."""
    final, alone = _final_estimator(model)
    if alone and type(final).__name__ == "HistGradientBoostingClassifier":
        try:
            return TreeEnsembleScorer(final)
        except (UnsupportedModel, AttributeError, ValueError):
            pass
    return PredictProbaScorer(model)


def check_agreement(model: Any, scorer: Scorer, X: np.ndarray, atol: float = 1e-12) -> float:
    """Largest |scorer - predict_proba| on probe rows; raises ValueError when above ``atol``."""
    if not len(X):
        return 0.0
    expected = np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)
    got = scorer.predict_proba1(X)
    diff = float(np.max(np.abs(expected - got)))
    if not diff <= atol:
        raise ValueError(f"{scorer.kind} scores differ from predict_proba by {diff:.3g} (> {atol:g})")
    return diff
