"""Exact, single-threaded scoring of a fitted model: the trees of a HistGradientBoosting, walked with numpy.

scikit-learn's ``predict_proba`` costs ~2 ms per row (input validation, OpenMP thread start-up); the same
trees walked here cost tens of microseconds and give the same scores: the same comparisons
(``x <= threshold``, NaN follows ``missing_go_to_left``), the leaf values added in the same order to the
same baseline, the same logistic link. ``compile_model`` returns this evaluator when the model is a
``Pipeline`` whose only step is a binary ``HistGradientBoostingClassifier`` on numeric features, and a
plain ``predict_proba`` wrapper for anything else (random forest, custom classifiers).

Whoever loads a model checks the evaluator against ``predict_proba`` on probe rows (``check_agreement``)
before serving it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.special import expit


class Scorer(Protocol):
    kind: str

    def predict_proba1(self, X: np.ndarray) -> np.ndarray:
        """Probability of the positive class for each row of a 2-D float64 array."""
        ...


class UnsupportedModel(ValueError):
    """The model is not one the tree evaluator can reproduce exactly."""


@dataclass(frozen=True)
class _Trees:
    feature: np.ndarray  # int64 per node (all trees, concatenated); 0 on leaves
    threshold: np.ndarray  # float64
    missing_left: np.ndarray  # bool
    children: np.ndarray  # int64, [2 * node + went_left] -> next global node (leaves: themselves)
    is_leaf: np.ndarray  # bool
    value: np.ndarray  # float64
    roots: np.ndarray  # int64, global index of each tree's root
    max_depth: int


class TreeEnsembleScorer:
    """Evaluates a binary HistGradientBoostingClassifier's trees with numpy, one level at a time."""

    kind = "hgb-numpy"

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
        self.baseline = float(np.asarray(clf._baseline_prediction).ravel()[0])
        feats, thr, miss, left, right, leaf, val, roots = [], [], [], [], [], [], [], []
        offset, depth = 0, 0
        for iteration in clf._predictors:
            (pred,) = iteration
            nodes = pred.nodes
            is_leaf = nodes["is_leaf"].astype(bool)
            if np.any(nodes["is_categorical"][~is_leaf]):
                raise UnsupportedModel("categorical splits are not supported")
            roots.append(offset)
            # Leaves point at themselves, so extra levels of the walk leave a finished row where it is.
            own = np.arange(len(nodes), dtype=np.int64) + offset
            feats.append(np.where(is_leaf, 0, nodes["feature_idx"].astype(np.int64)))
            thr.append(nodes["num_threshold"].astype(np.float64))
            miss.append(nodes["missing_go_to_left"].astype(bool))
            left.append(np.where(is_leaf, own, nodes["left"].astype(np.int64) + offset))
            right.append(np.where(is_leaf, own, nodes["right"].astype(np.int64) + offset))
            leaf.append(is_leaf)
            val.append(nodes["value"].astype(np.float64))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        if not roots:
            raise UnsupportedModel("model has no trees")
        try:
            self._build_masks(clf)
            self._one_row = True
        except UnsupportedModel:  # very wide trees: one-row scoring uses the level walk too
            self._one_row = False
        self.n_trees = len(roots)
        self._t = _Trees(
            feature=np.concatenate(feats),
            threshold=np.concatenate(thr),
            missing_left=np.concatenate(miss),
            children=np.stack([np.concatenate(right), np.concatenate(left)], axis=1).ravel(),
            is_leaf=np.concatenate(leaf),
            value=np.concatenate(val),
            roots=np.asarray(roots, np.int64),
            max_depth=depth,
        )

    def _build_masks(self, clf: Any) -> None:
        """Leaf bitmasks for one-row scoring (the QuickScorer idea, vectorised with numpy).

        Number each tree's leaves left to right. A split whose test fails (the row goes right) rules out
        every leaf of its left subtree; the leaf the row reaches is the leftmost leaf no failed split
        rules out. So one comparison per split for all trees at once, one AND-reduction per tree and a
        lowest-set-bit give every tree's leaf without walking level by level.
        """
        feat, thr, miss, masks, seg, leaf_vals, leaf_off = [], [], [], [], [], [], []
        n_leaves_total = 0
        for (pred,) in clf._predictors:
            nodes = pred.nodes
            order = _leaf_order(nodes)
            leaf_index = {j: i for i, j in enumerate(order)}
            if len(order) > 63:
                raise UnsupportedModel("trees with more than 63 leaves are not supported by the one-row scorer")

            full = (1 << len(order)) - 1
            seg.append(len(feat))
            # a first entry per tree that never rules anything out keeps every segment non-empty
            feat.append(0)
            thr.append(np.inf)
            miss.append(True)
            masks.append(full)
            for j in range(len(nodes)):
                if not nodes["is_leaf"][j]:
                    feat.append(int(nodes["feature_idx"][j]))
                    thr.append(float(nodes["num_threshold"][j]))
                    miss.append(bool(nodes["missing_go_to_left"][j]))
                    masks.append(full & ~_leaves_under(nodes, int(nodes["left"][j]), leaf_index))
            leaf_off.append(n_leaves_total)
            leaf_vals.extend(float(nodes["value"][k]) for k in order)
            n_leaves_total += len(order)
        self._m_feature = np.asarray(feat, np.int64)
        self._m_threshold = np.asarray(thr, np.float64)
        self._m_missing_left = np.asarray(miss, bool)
        self._m_mask = np.asarray(masks, np.uint64)
        self._m_segments = np.asarray(seg, np.int64)
        self._m_leaf_values = np.asarray(leaf_vals, np.float64)
        self._m_leaf_offset = np.asarray(leaf_off, np.int64)

    def _raw_one(self, x: np.ndarray) -> float:
        v = np.take(x, self._m_feature)
        go_left = v <= self._m_threshold
        if np.isnan(x).any():
            go_left = np.where(np.isnan(v), self._m_missing_left, go_left)
        # a split that sends the row left rules nothing out (all ones); one that sends it right, its mask
        rule = self._m_mask | (-(go_left.astype(np.uint64)))
        alive = np.bitwise_and.reduceat(rule, self._m_segments)
        lowest = alive & (~alive + np.uint64(1))  # lowest set bit
        leaf = np.frexp(lowest.astype(np.float64))[1] - 1  # exact: a power of two below 2**63
        acc = np.empty(self.n_trees + 1, np.float64)  # [baseline, leaf values in tree order]: cumsum adds
        acc[0] = self.baseline  # them one by one, in scikit-learn's order
        acc[1:] = np.take(self._m_leaf_values, self._m_leaf_offset + leaf)
        return float(np.cumsum(acc)[-1])

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw margin (log-odds) per row, equal to scikit-learn's ``_raw_predict``."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a 2-D array with {self.n_features} columns, got shape {X.shape}")
        if X.shape[0] == 1 and self._one_row:
            return np.array([self._raw_one(X[0])])
        t = self._t
        n = X.shape[0]
        flat = X.ravel()
        row_offset = (np.arange(n, dtype=np.int64) * self.n_features)[:, None]
        node = np.broadcast_to(t.roots, (n, self.n_trees)).copy()  # (rows, trees)
        has_nan = bool(np.isnan(flat).any())
        for level in range(t.max_depth):
            x = flat[row_offset + t.feature[node]]
            if has_nan:
                go_left = np.where(np.isnan(x), t.missing_left[node], x <= t.threshold[node])
            else:
                go_left = x <= t.threshold[node]
            node = t.children[node * 2 + go_left]
            if level % 4 == 3 and t.is_leaf[node].all():
                break
        leaf_values = t.value[node]
        # cumsum adds left to right, i.e. in the same order as scikit-learn's tree-by-tree loop
        acc = np.empty((n, self.n_trees + 1), dtype=np.float64)
        acc[:, 0] = self.baseline
        acc[:, 1:] = leaf_values
        return np.cumsum(acc, axis=1)[:, -1]

    def predict_proba1(self, X: np.ndarray) -> np.ndarray:
        return expit(self.raw(X))


def _leaf_order(nodes: np.ndarray) -> list[int]:
    """A tree's leaves, left to right (iterative: trees may be deep)."""
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        if nodes["is_leaf"][j]:
            order.append(j)
        else:
            stack.append(int(nodes["right"][j]))
            stack.append(int(nodes["left"][j]))
    return order


def _leaves_under(nodes: np.ndarray, j: int, leaf_index: dict[int, int]) -> int:
    """Bitmask of the leaves below node j."""
    bits, stack = 0, [j]
    while stack:
        k = stack.pop()
        if nodes["is_leaf"][k]:
            bits |= 1 << leaf_index[k]
        else:
            stack.extend((int(nodes["left"][k]), int(nodes["right"][k])))
    return bits


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
