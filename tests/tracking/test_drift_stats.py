"""Drift statistics on summaries (no Spark): the tests match scipy, a known shift is found and named,
no shift is flagged in at most 1 of 20 seeded trials at the configured significance after Bonferroni."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from fraud_detection import drift as D
from fraud_detection.features import FEATURE_KINDS
from fraud_detection.settings import Settings
from tests.tracking.drift_data import SHIFTED, generate

SETTINGS = Settings()


def _summ(x: np.ndarray, kind: str, edges=None) -> D.Summary:
    return D.summarize_numpy({"x": x}, {"x": kind}, {"x": edges or []})["x"]


def test_welch_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 500), rng.normal(0.1, 2, 300)
    t, p = D.welch_t(_summ(a, "continuous"), _summ(b, "continuous"))
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert t == pytest.approx(ref.statistic, rel=1e-9) and p == pytest.approx(ref.pvalue, rel=1e-9)


def test_mann_whitney_from_counts_matches_scipy_with_ties():
    rng = np.random.default_rng(2)
    a, b = rng.poisson(3, 700).astype(float), rng.poisson(3.3, 400).astype(float)
    u, p = D.mann_whitney(_summ(a, "ordinal"), _summ(b, "ordinal"))
    ref = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    assert u == pytest.approx(ref.statistic, rel=1e-9) and p == pytest.approx(ref.pvalue, rel=1e-9)


def test_mann_whitney_bounded_sample_above_distinct_cap():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 5000), rng.normal(0.3, 1, 5000)
    sa = D.summarize_numpy({"x": a}, {"x": "ordinal"}, {}, max_distinct=100, sample_rows=1000)["x"]
    sb = D.summarize_numpy({"x": b}, {"x": "ordinal"}, {}, max_distinct=100, sample_rows=1000, seed=1)["x"]
    assert sa.sample is not None and len(sa.sample) == 1000 and sa.n == 5000
    _, p = D.mann_whitney(sa, sb)
    assert p < 1e-6


def test_chi_square_and_proportions_match_scipy():
    rng = np.random.default_rng(4)
    a, b = rng.choice(5, 800).astype(float), rng.choice(5, 600, p=[0.3, 0.2, 0.2, 0.2, 0.1]).astype(float)
    chi, p = D.chi_square(_summ(a, "nominal"), _summ(b, "nominal"))
    table = np.vstack([np.bincount(a.astype(int), minlength=5), np.bincount(b.astype(int), minlength=5)])
    ref = stats.chi2_contingency(table, correction=False)
    assert chi == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)

    x, y = (rng.random(1000) < 0.2).astype(float), (rng.random(900) < 0.25).astype(float)
    z, p = D.proportion_z(_summ(x, "binary"), _summ(y, "binary"))
    p1, p2, pool = x.mean(), y.mean(), (x.sum() + y.sum()) / 1900
    z_ref = (p2 - p1) / math.sqrt(pool * (1 - pool) * (1 / 1000 + 1 / 900))
    assert z == pytest.approx(z_ref) and p == pytest.approx(2 * stats.norm.sf(abs(z_ref)))


def test_psi_zero_for_identical_and_large_for_disjoint():
    assert D.psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    assert D.psi(np.array([100, 0]), np.array([0, 100])) > 5


def test_degenerate_features_are_not_flagged():
    const = np.ones(200)
    r = D.compare(
        D.summarize_numpy({"c": const, "b": const, "n": const}, {"c": "continuous", "b": "binary", "n": "nominal"}, {}),
        D.summarize_numpy({"c": const, "b": const, "n": const}, {"c": "continuous", "b": "binary", "n": "nominal"}, {}),
    )
    assert not r.drift_found


def test_injected_shift_is_found_and_the_right_features_named():
    result = D.compare_numpy(generate(100), generate(200, shift=True), FEATURE_KINDS, SETTINGS)
    assert result.features_tested == len(FEATURE_KINDS)
    assert result.drift_found
    assert set(result.drifted) == set(SHIFTED), result.drifted
    by_name = {f.name: f for f in result.features}
    for name, kind in SHIFTED.items():
        f = by_name[name]
        assert f.kind == kind and f.test == D.TESTS[kind][0]
        assert f.p_value < result.alpha_per_feature and f.psi > 0.01
    assert result.alpha_per_feature == pytest.approx(SETTINGS.drift_alpha / len(FEATURE_KINDS))


def test_no_shift_not_flagged_in_at_least_19_of_20_seeded_trials():
    flagged = []
    for trial in range(20):
        r = D.compare_numpy(generate(1000 + 2 * trial), generate(1001 + 2 * trial), FEATURE_KINDS, SETTINGS)
        assert r.features_tested == len(FEATURE_KINDS)
        if r.drift_found:
            flagged.append((trial, r.drifted))
    assert len(flagged) <= 1, flagged


def test_min_psi_gate_suppresses_significant_but_tiny_shift():
    rng = np.random.default_rng(5)
    big_a, big_b = rng.normal(0, 1, 200_000), rng.normal(0.03, 1, 200_000)  # significant at this n, tiny in size
    s = Settings(drift_min_psi=0.1)
    assert D.compare_numpy({"x": big_a}, {"x": big_b}, {"x": "continuous"}, Settings()).drift_found
    assert not D.compare_numpy({"x": big_a}, {"x": big_b}, {"x": "continuous"}, s).drift_found
