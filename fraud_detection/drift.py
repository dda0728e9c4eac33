"""Data drift: compare a current period with a reference one, feature by feature.

Each feature is tested with the test that fits its kind (``fraud_detection.features.FEATURE_KINDS``):

============  ======================================  =========================================
kind          test                                    what is collected from the data
============  ======================================  =========================================
continuous    Welch's t-test (unequal variances)      n, mean, sample variance; quantile-bin counts
binary        two-proportion z-test                   value counts (0 / 1)
nominal       chi-square test of homogeneity          value counts per category
ordinal       Mann-Whitney U (normal approximation,   value counts (exact ranks with ties); a
              tie-corrected, continuity-corrected)    bounded sample above ``drift_max_distinct``
============  ======================================  =========================================

A feature is *drifted* when its p-value is below ``alpha / m`` (Bonferroni over the ``m`` features
tested; ``alpha`` is the family-wise significance) and, if ``min_psi`` > 0, its population stability
index is at least ``min_psi``. The PSI is reported for every feature: continuous features over the
reference's quantile bins, ordinal ones over quantile bins of their values, binary / nominal ones over
their categories.

The data is reduced to per-feature summaries first, with Spark aggregates (one aggregate pass plus one
grouped count per DataFrame) or with numpy for small in-memory data (live drift, tests). Only the
summaries reach the driver, so the cost on the driver does not grow with the data. Statistics are
computed from the summaries by the same code either way.

This module is the statistics and the report: pure numpy (scipy for the p-values, matplotlib for the
plots, both imported when used), no Spark. The Spark summaries, and the training job's check that uses
them, are in ``spark_jobs/drift.py``.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fraud_detection import layout

KINDS = ("continuous", "binary", "nominal", "ordinal")
PSI_FLOOR = 1e-4  # proportions floored before the log in PSI (an empty bin would be infinite)
REPORTS = layout.DRIFT_REPORTS


# =================================================================================================
# Summaries: what is collected from the data
# =================================================================================================


@dataclass
class Summary:
    kind: str
    n: int
    mean: float | None = None  # continuous
    var: float | None = None  # continuous (sample variance)
    edges: list[float] | None = None  # continuous: inner bin edges (from the reference)
    bins: list[int] | None = None  # continuous: counts per bin, len(edges) + 1; bin i = #edges < x
    values: list[float] | None = None  # binary / nominal / ordinal: distinct values, ascending
    counts: list[int] | None = None  # counts of those values
    sample: list[float] | None = None  # ordinal above the distinct-value cap: bounded sample

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Summary:
        return Summary(**dict(d))


def quantile_edges(values: np.ndarray, bins: int, weights: np.ndarray | None = None) -> list[float]:
    """Inner edges at the reference's 1/bins ... (bins-1)/bins quantiles, deduplicated (point masses)."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return []
    probs = np.arange(1, bins) / bins
    if weights is None:
        q = np.quantile(values, probs, method="inverted_cdf")
    else:
        order = np.argsort(values)
        v, w = values[order], np.asarray(weights, np.float64)[order]
        cdf = np.cumsum(w) / w.sum()
        q = v[np.minimum(np.searchsorted(cdf, probs, side="left"), len(v) - 1)]
    return sorted({float(x) for x in q})


def bin_index(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin of each value: the number of edges strictly below it (bin i holds (edge[i-1], edge[i]])."""
    return np.searchsorted(np.asarray(edges, np.float64), np.asarray(values, np.float64), side="left")


def _value_counts(x: np.ndarray) -> tuple[list[float], list[int]]:
    v, c = np.unique(x, return_counts=True)
    return [float(a) for a in v], [int(b) for b in c]


def summarize_numpy(
    data: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    edges: Mapping[str, list[float]],
    *,
    max_distinct: int = 5000,
    sample_rows: int = 20_000,
    seed: int = 0,
) -> dict[str, Summary]:
    """Summaries of in-memory columns (NaN = missing). ``edges``: bin edges of the continuous features."""
    rng = np.random.default_rng(seed)
    out: dict[str, Summary] = {}
    for name, kind in kinds.items():
        x = np.asarray(data[name], np.float64)
        x = x[~np.isnan(x)]
        n = int(x.size)
        if kind == "continuous":
            e = list(edges.get(name, []))
            out[name] = Summary(
                kind,
                n,
                mean=float(x.mean()) if n else None,
                var=float(x.var(ddof=1)) if n > 1 else None,
                edges=e,
                bins=np.bincount(bin_index(x, e), minlength=len(e) + 1).astype(int).tolist(),
            )
        elif kind == "ordinal" and np.unique(x).size > max_distinct:
            pick = x if n <= sample_rows else rng.choice(x, sample_rows, replace=False)
            out[name] = Summary(kind, n, sample=[float(a) for a in pick])
        elif kind in KINDS:
            values, counts = _value_counts(x)
            out[name] = Summary(kind, n, values=values, counts=counts)
        else:
            raise ValueError(f"feature {name!r}: unknown kind {kind!r}")
    return out


def reference_edges_numpy(data: Mapping[str, np.ndarray], kinds: Mapping[str, str], bins: int) -> dict[str, list]:
    out = {}
    for name, kind in kinds.items():
        if kind == "continuous":
            x = np.asarray(data[name], np.float64)
            out[name] = quantile_edges(x[~np.isnan(x)], bins)
    return out


# =================================================================================================
# Statistics on summaries
# =================================================================================================


def welch_t(a: Summary, b: Summary) -> tuple[float, float]:
    from scipy import stats

    if a.n < 2 or b.n < 2 or a.var is None or b.var is None:
        return math.nan, math.nan
    if a.var == 0 and b.var == 0:
        return (0.0, 1.0) if a.mean == b.mean else (math.inf, 0.0)
    r = stats.ttest_ind_from_stats(a.mean, math.sqrt(a.var), a.n, b.mean, math.sqrt(b.var), b.n, equal_var=False)
    return float(r.statistic), float(r.pvalue)


def _aligned(a: Summary, b: Summary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = sorted(set(a.values or []) | set(b.values or []))
    ca = dict(zip(a.values or [], a.counts or [], strict=True))
    cb = dict(zip(b.values or [], b.counts or [], strict=True))
    return (
        np.asarray(values, np.float64),
        np.asarray([ca.get(v, 0) for v in values], np.float64),
        np.asarray([cb.get(v, 0) for v in values], np.float64),
    )


def proportion_z(a: Summary, b: Summary) -> tuple[float, float]:
    """Two-proportion z-test of P(value == 1), pooled variance."""
    from scipy import stats

    if a.n == 0 or b.n == 0:
        return math.nan, math.nan
    values, ca, cb = _aligned(a, b)
    k1, k2 = float(ca[values == 1].sum()), float(cb[values == 1].sum())
    p1, p2 = k1 / a.n, k2 / b.n
    pool = (k1 + k2) / (a.n + b.n)
    se = math.sqrt(pool * (1 - pool) * (1 / a.n + 1 / b.n))
    if se == 0:
        return 0.0, 1.0
    z = (p2 - p1) / se
    return float(z), float(2 * stats.norm.sf(abs(z)))


def chi_square(a: Summary, b: Summary) -> tuple[float, float]:
    """Chi-square test of homogeneity on the 2 x K table of category counts (empty categories dropped)."""
    from scipy import stats

    if a.n == 0 or b.n == 0:
        return math.nan, math.nan
    _, ca, cb = _aligned(a, b)
    keep = (ca + cb) > 0
    if keep.sum() < 2:  # one category on both sides: nothing can differ
        return 0.0, 1.0
    r = stats.chi2_contingency(np.vstack([ca[keep], cb[keep]]), correction=False)
    return float(r.statistic), float(r.pvalue)


def mann_whitney_counts(values: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> tuple[float, float]:
    """Mann-Whitney U from value counts: exact mid-ranks with ties, normal approximation with tie and
    continuity correction (the same as ``scipy.stats.mannwhitneyu(method="asymptotic")``).

    Returns (U of the first sample, two-sided p-value).
    """
    from scipy import stats

    del values  # counts must already be in ascending value order
    n1, n2 = float(ca.sum()), float(cb.sum())
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    t = ca + cb
    n = n1 + n2
    before = np.concatenate([[0.0], np.cumsum(t)[:-1]])
    midrank = before + (t + 1) / 2
    u1 = float((ca * midrank).sum() - n1 * (n1 + 1) / 2)
    mu = n1 * n2 / 2
    tie = float((t**3 - t).sum())
    var = n1 * n2 / 12 * ((n + 1) - tie / (n * (n - 1)))
    if var <= 0:
        return u1, 1.0
    u = max(u1, n1 * n2 - u1)
    z = (u - mu - 0.5) / math.sqrt(var)
    return u1, float(min(1.0, 2 * stats.norm.sf(z)))


def mann_whitney(a: Summary, b: Summary) -> tuple[float, float]:
    from scipy import stats

    if a.sample is not None or b.sample is not None:
        xa = np.asarray(a.sample if a.sample is not None else _expand(a), np.float64)
        xb = np.asarray(b.sample if b.sample is not None else _expand(b), np.float64)
        if xa.size == 0 or xb.size == 0:
            return math.nan, math.nan
        r = stats.mannwhitneyu(xa, xb, alternative="two-sided", method="asymptotic")
        return float(r.statistic), float(r.pvalue)
    values, ca, cb = _aligned(a, b)
    return mann_whitney_counts(values, ca, cb)


def _expand(s: Summary, limit: int = 20_000) -> np.ndarray:
    """Value counts -> a sample of at most ``limit`` values with the same distribution (deterministic)."""
    values, counts = np.asarray(s.values or [], np.float64), np.asarray(s.counts or [], np.float64)
    if counts.sum() == 0:
        return np.empty(0)
    scale = min(1.0, limit / counts.sum())
    return np.repeat(values, np.round(counts * scale).astype(int))


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Population stability index: sum (cur% - ref%) * ln(cur% / ref%), proportions floored at 1e-4."""
    r = np.asarray(ref_counts, np.float64)
    c = np.asarray(cur_counts, np.float64)
    if r.sum() == 0 or c.sum() == 0:
        return math.nan
    p = np.maximum(r / r.sum(), PSI_FLOOR)
    q = np.maximum(c / c.sum(), PSI_FLOOR)
    return float(((q - p) * np.log(q / p)).sum())


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _bins_for_plot(a: Summary, b: Summary, bins: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels and counts of both sides on the same bins (the ones PSI is computed over)."""
    if a.kind == "continuous":
        labels = _bin_labels(a.edges or [])
        return labels, np.asarray(a.bins, np.float64), np.asarray(b.bins, np.float64)
    if a.kind == "ordinal" and (a.sample is not None or b.sample is not None):
        xa = np.asarray(a.sample if a.sample is not None else _expand(a))
        xb = np.asarray(b.sample if b.sample is not None else _expand(b))
        e = quantile_edges(xa, bins)
        ra = np.bincount(bin_index(xa, e), minlength=len(e) + 1)
        rb = np.bincount(bin_index(xb, e), minlength=len(e) + 1)
        return _bin_labels(e), ra.astype(float), rb.astype(float)
    values, ca, cb = _aligned(a, b)
    if a.kind == "ordinal" and len(values) > bins:
        ref_mask = ca > 0
        e = quantile_edges(values[ref_mask], bins, weights=ca[ref_mask]) if ref_mask.any() else []
        idx = bin_index(values, e)
        ra = np.bincount(idx, weights=ca, minlength=len(e) + 1)
        rb = np.bincount(idx, weights=cb, minlength=len(e) + 1)
        return _bin_labels(e), ra, rb
    return [_fmt(v) for v in values], ca, cb


def _bin_labels(e: list[float]) -> list[str]:
    """Labels of the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)``."""
    if not e:
        return ["all"]
    labels = ["<= " + _fmt(e[0])]
    for lo, hi in zip(e, e[1:], strict=False):
        labels.append("(" + _fmt(lo) + ", " + _fmt(hi) + "]")
    labels.append("> " + _fmt(e[-1]))
    return labels


TESTS = {
    "continuous": ("welch_t", welch_t),
    "binary": ("two_proportion_z", proportion_z),
    "nominal": ("chi_square", chi_square),
    "ordinal": ("mann_whitney_u", mann_whitney),
}


@dataclass
class FeatureDrift:
    name: str
    kind: str
    test: str
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None  # Bonferroni: min(1, p * m)
    psi: float | None
    drifted: bool
    n_reference: int
    n_current: int
    reference_summary: str
    current_summary: str
    bins: list[str] = field(default_factory=list)
    reference_share: list[float] = field(default_factory=list)
    current_share: list[float] = field(default_factory=list)


@dataclass
class DriftResult:
    alpha: float
    alpha_per_feature: float
    features_tested: int
    min_psi: float
    drift_found: bool
    drifted: list[str]
    features: list[FeatureDrift]

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "alpha_per_feature": self.alpha_per_feature,
            "correction": "bonferroni",
            "features_tested": self.features_tested,
            "min_psi": self.min_psi,
            "drift_found": self.drift_found,
            "drifted_features": self.drifted,
            "features": [asdict(f) for f in self.features],
        }


def _describe(s: Summary) -> str:
    if s.kind == "continuous":
        if s.mean is None:
            return f"n={s.n}"
        return f"n={s.n}, mean={_fmt(s.mean)}, sd={_fmt(math.sqrt(s.var or 0.0))}"
    if s.kind == "binary":
        ones = sum(c for v, c in zip(s.values or [], s.counts or [], strict=True) if v == 1)
        return f"n={s.n}, share of 1={_fmt(ones / s.n) if s.n else 'n/a'}"
    if s.sample is not None:
        return f"n={s.n}, median={_fmt(float(np.median(s.sample))) if s.sample else 'n/a'} (sample {len(s.sample)})"
    if s.kind == "ordinal" and s.counts:
        v, c = np.asarray(s.values), np.asarray(s.counts, np.float64)
        return f"n={s.n}, mean={_fmt(float((v * c).sum() / c.sum()))}"
    return f"n={s.n}, categories={len(s.values or [])}"


def _finite(x: float) -> float | None:
    return None if x is None or math.isnan(x) else (float(x) if math.isfinite(x) else float(np.sign(x)) * 1e308)


def compare(
    reference: Mapping[str, Summary],
    current: Mapping[str, Summary],
    *,
    alpha: float = 0.01,
    min_psi: float = 0.0,
    psi_bins: int = 10,
) -> DriftResult:
    """Test every feature present on both sides; Bonferroni over the features that could be tested."""
    rows = []
    for name, ref in reference.items():
        cur = current.get(name)
        if cur is None:
            continue
        test_name, test = TESTS[ref.kind]
        stat, p = test(ref, cur)
        labels, rc, cc = _bins_for_plot(ref, cur, psi_bins)
        rows.append((name, ref, cur, test_name, stat, p, psi(rc, cc), labels, rc, cc))
    m = sum(1 for r in rows if not math.isnan(r[5]))
    per_feature = alpha / max(m, 1)
    out = []
    for name, ref, cur, test_name, stat, p, value_psi, labels, rc, cc in rows:
        tested = not math.isnan(p)
        drifted = tested and p < per_feature and (min_psi <= 0 or (not math.isnan(value_psi) and value_psi >= min_psi))
        out.append(
            FeatureDrift(
                name=name,
                kind=ref.kind,
                test=test_name,
                statistic=_finite(stat),
                p_value=_finite(p),
                p_adjusted=min(1.0, p * m) if tested else None,
                psi=_finite(value_psi),
                drifted=bool(drifted),
                n_reference=ref.n,
                n_current=cur.n,
                reference_summary=_describe(ref),
                current_summary=_describe(cur),
                bins=labels,
                reference_share=[float(x) for x in (rc / rc.sum() if rc.sum() else rc)],
                current_share=[float(x) for x in (cc / cc.sum() if cc.sum() else cc)],
            )
        )
    drifted_names = [f.name for f in out if f.drifted]
    return DriftResult(
        alpha=alpha,
        alpha_per_feature=per_feature,
        features_tested=m,
        min_psi=min_psi,
        drift_found=bool(drifted_names),
        drifted=drifted_names,
        features=out,
    )


def compare_numpy(
    reference: Mapping[str, np.ndarray], current: Mapping[str, np.ndarray], kinds: Mapping[str, str], settings
) -> DriftResult:
    edges = reference_edges_numpy(reference, kinds, settings.drift_psi_bins)
    kw = {"max_distinct": settings.drift_max_distinct, "sample_rows": settings.drift_sample_rows}
    ref = summarize_numpy(reference, kinds, edges, seed=settings.random_seed, **kw)
    cur = summarize_numpy(current, kinds, edges, seed=settings.random_seed + 1, **kw)
    return compare(
        ref, cur, alpha=settings.drift_alpha, min_psi=settings.drift_min_psi, psi_bins=settings.drift_psi_bins
    )


# =================================================================================================
# Report: JSON + HTML with one plot per feature
# =================================================================================================


def _plot_png(f: FeatureDrift) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(f.bins))
    fig, ax = plt.subplots(figsize=(5.0, 2.4), dpi=80)
    try:
        ax.bar(x - 0.2, f.reference_share, width=0.4, label="reference", color="#4c72b0")
        ax.bar(x + 0.2, f.current_share, width=0.4, label="current", color="#dd8452")
        ax.set_xticks(x)
        ax.set_xticklabels(f.bins, rotation=45, ha="right", fontsize=6)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel("share", fontsize=7)
        flag = "DRIFT" if f.drifted else "no drift"
        ax.set_title(f"{f.name} ({f.kind}) - {flag}, PSI {f.psi if f.psi is None else round(f.psi, 3)}", fontsize=8)
        ax.legend(fontsize=6)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(fig)


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def render_html(result: DriftResult, meta: Mapping[str, Any], plots: Mapping[str, str]) -> str:
    e = html.escape
    head = "drift found in " + ", ".join(result.drifted) if result.drift_found else "no drift found"
    rows = []
    for f in sorted(result.features, key=lambda f: (not f.drifted, f.p_value if f.p_value is not None else 2.0)):
        p = "n/a" if f.p_value is None else f"{f.p_value:.3g}"
        pa = "n/a" if f.p_adjusted is None else f"{f.p_adjusted:.3g}"
        ps = "n/a" if f.psi is None else f"{f.psi:.3f}"
        style = ' style="background:#fde2e1"' if f.drifted else ""
        rows.append(
            f"<tr{style}><td><a href='#{_slug(f.name)}'>{e(f.name)}</a></td><td>{e(f.kind)}</td><td>{e(f.test)}</td>"
            f"<td>{p}</td><td>{pa}</td><td>{ps}</td><td>{'yes' if f.drifted else 'no'}</td>"
            f"<td>{e(f.reference_summary)}</td><td>{e(f.current_summary)}</td></tr>"
        )
    figures = "".join(
        f"<figure id='{_slug(f.name)}'><img src='{e(plots[f.name])}' alt='{e(f.name)}'></figure>"
        for f in result.features
        if f.name in plots
    )
    meta_rows = "".join(
        f"<tr><th>{e(str(k))}</th><td>{e(json.dumps(v, default=str))}</td></tr>" for k, v in meta.items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Drift report</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}figure{{display:inline-block;margin:4px}}</style>
</head><body><h1>Drift report: {e(head)}</h1>
<p>Family-wise significance {result.alpha} with Bonferroni over {result.features_tested} features:
a feature is drifted when its p-value is below {result.alpha_per_feature:.3g}
{f"and its PSI is at least {result.min_psi}" if result.min_psi > 0 else ""}.
PSI (population stability index) is a size of the shift: below 0.1 small, 0.1-0.25 moderate, above 0.25 large.
With many rows the tests flag even small shifts; read p-value and PSI together.</p>
<table>{meta_rows}</table><h2>Features</h2>
<table><tr><th>feature</th><th>kind</th><th>test</th><th>p-value</th><th>p (Bonferroni)</th><th>PSI</th>
<th>drifted</th><th>reference</th><th>current</th></tr>{"".join(rows)}</table>
<h2>Distributions (share per bin: reference vs current)</h2>{figures}</body></html>"""


def write_report(store, prefix: str, result: DriftResult, meta: Mapping[str, Any], *, plots: bool = True) -> str:
    """Write ``<prefix>/report.json``, ``report.html`` and ``plots/<feature>.png``; returns the JSON key."""
    plot_keys: dict[str, str] = {}
    if plots:
        for f in result.features:
            rel = f"plots/{_slug(f.name)}.png"
            store.write_bytes(f"{prefix}/{rel}", _plot_png(f))
            plot_keys[f.name] = rel
    doc = {"created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **dict(meta), **result.to_dict()}
    store.write_bytes(f"{prefix}/report.html", render_html(result, meta, plot_keys).encode())
    store.write_bytes(f"{prefix}/report.json", json.dumps(doc, indent=2, default=str).encode())  # written last
    return f"{prefix}/report.json"


def summary_for_record(result: DriftResult, report_key: str | None, **extra: Any) -> dict[str, Any]:
    out = {"drift_found": result.drift_found, "features": list(result.drifted), "report": report_key}
    if result.drift_found:
        out["reason"] = f"drift found in {len(result.drifted)} feature(s): {', '.join(result.drifted)}"
    return out | extra
