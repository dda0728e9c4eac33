"""The training job's steps in one process with pandas / numpy: the baseline ``bench/pipeline_bench.py`` compares
the Spark job with (what a data scientist would write without Spark).

Same steps and the same definitions as ``spark_jobs.pipeline``:

* validate each CSV against ``fraud_detection.contract.COLUMNS`` (vectorised pandas checks derived from the
  contract: castable types, required not-null, ranges, allowed sets, regexes, unique ``trans_num``;
  great-expectations is not used), skip failing files;
* curated transactions (latest file wins on a duplicate ``trans_num``), written to Parquet by year/month;
* the features of ``fraud_detection.features.FEATURES``, evaluated by the *same* feature functions through a
  numpy ops object; the per-card history windows ``[t - W, t - 1]`` come from per-card cumulative sums and
  ``np.searchsorted`` on the (card, time)-sorted rows; written to Parquet by year/month;
* the time split of ``spark_jobs.split.choose_split``; the bounded, weighted training sample of
  ``spark_jobs.train`` (``settings.max_training_rows``, Bernoulli sampling like Spark's ``sample``);
* ``spark_jobs.train.fit`` (``models.build_model``), threshold at max F1 on the validation period, metrics on
  the test period from ``spark_jobs.evaluate`` (score histogram on the same 1e-6 grid);
* permutation importance on a 20k validation sample, as the Spark job does for models without impurity
  importances; the model and metrics are saved under ``--out``.

``--check-features N`` (default 1000) recomputes N random rows with the serving row engine
(``features.transaction_features``) and reports the largest difference (outside the stage timings).

    .venv/bin/python bench/pandas_pipeline.py --input data/transactions.csv --out bench/out/pandas_run

Prints one JSON line: timings per stage, metrics, split counts, peak RSS of this process.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import pickle
import resource
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraud_detection import contract, features  # noqa: E402
from fraud_detection.features import FEATURE_NAMES, FEATURES, WINDOWS  # noqa: E402
from fraud_detection.models import model_feature_importances  # noqa: E402
from fraud_detection.settings import get_settings  # noqa: E402
from spark_jobs import evaluate, split, train  # noqa: E402

HEADLINE = ("roc_auc", "pr_auc", "precision", "recall", "f1", "threshold", "recall_at_1pct_fpr", "recall_at_0_1pct_fpr")
ONLINE_IDX = sorted(features.CATEGORY_INDEX[c] for c in features.ONLINE_CATEGORIES)


class RunFailed(RuntimeError):
    pass


# =================================================================================================
# Extract + validate
# =================================================================================================


def list_inputs(paths: list[str]) -> list[Path]:
    found: set[Path] = set()
    for p in paths:
        path = Path(p).expanduser().resolve()
        if path.is_dir():
            found.update(f for f in path.rglob("*.csv") if not f.name.startswith("."))
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return sorted(found, key=str)


def read_header(path: Path) -> list[str]:
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not head.strip():
        raise contract.ContractError("file is empty")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise contract.ContractError(f"not UTF-8 text: {exc}") from exc
    if len(head.strip().splitlines()) < 2:
        raise contract.ContractError("file has a header but no rows")
    return next(csv.reader(io.StringIO(text.splitlines()[0])), [])


def read_raw(path: Path) -> pd.DataFrame:
    """The contract columns as strings (empty field -> missing, as Spark reads them); other text stays text."""
    return pd.read_csv(
        path,
        usecols=list(contract.COLUMN_NAMES),
        dtype="string[pyarrow]",
        keep_default_na=False,
        na_values=[""],
        engine="pyarrow",
    )[list(contract.COLUMN_NAMES)]


def cast_column(col: contract.Column, raw: pd.Series) -> pd.Series:
    """Raw strings -> typed values (missing where absent or not parseable), like ``contract.spark_typed_column``."""
    if col.dtype == "string":
        return raw
    text = raw.str.strip()
    if col.dtype == "timestamp":
        return pd.to_datetime(text, format=contract.TIMESTAMP_FORMAT_PY, errors="coerce")
    if col.dtype == "date":
        return pd.to_datetime(text, format=contract.DATE_FORMAT_PY, errors="coerce")
    num = pd.to_numeric(text, errors="coerce").astype("float64")
    if col.dtype in ("int", "long"):
        num = np.trunc(num)  # Spark's string -> integer cast drops a fractional part
        num[~np.isfinite(num)] = np.nan
    return num


def validate_file(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Typed frame + the failed checks (empty when the file passes), one check per contract expectation."""
    n = len(raw)
    typed: dict[str, pd.Series] = {}
    failed: list[dict[str, Any]] = []

    def check(name: str, column: str, bad: pd.Series | np.ndarray) -> None:
        count = int(np.count_nonzero(np.asarray(bad, dtype=bool)))
        if count:
            failed.append({"check": name, "column": column, "unexpected_count": count, "element_count": n})

    for c in contract.COLUMNS:
        r = raw[c.name]
        t = cast_column(c, r)
        typed[c.name] = t
        present = t.notna().to_numpy()
        if c.dtype != "string":
            blank = r.isna().to_numpy() | (r.str.strip() == "").fillna(False).to_numpy(bool)
            check("castable", c.name, ~(blank | present))
        if c.required:
            check("not_null", c.name, ~present)
        if c.min_value is not None or c.max_value is not None:
            v = t.to_numpy(np.float64, na_value=np.nan)
            bad = np.zeros(n, bool)
            if c.min_value is not None:
                bad |= (v <= c.min_value) if c.strict_min else (v < c.min_value)
            if c.max_value is not None:
                bad |= v > c.max_value
            check("between", c.name, bad & present)
        if c.allowed is not None:
            check("in_set", c.name, ~t.isin(list(c.allowed)).to_numpy(bool) & present)
        if c.regex is not None:
            check("regex", c.name, ~r.str.contains(c.regex, regex=True).fillna(True).to_numpy(bool))
        if c.unique:
            check("unique", c.name, r.duplicated(keep=False).to_numpy(bool) & present)
    return pd.DataFrame(typed), failed


# =================================================================================================
# Features: the feature functions of fraud_detection.features on numpy arrays
# =================================================================================================


class _GroupWindows:
    """History windows ``[t - W, t - 1]`` within groups of rows (a card, or a card and category).

    In (group, time) order, the group's rows with a time in ``[t - W, t - 1]`` are the positions
    ``lo_W .. hi - 1`` found by ``np.searchsorted`` on the composite key ``group * SPAN + time``; an aggregate over
    them is ``P[hi] - P[lo]`` with P the group's exclusive prefix sum (computed per group, so its magnitude is one
    group's total, as in the Spark job's cumulative frames). Results come back in the caller's row order.
    """

    def __init__(self, group: np.ndarray, ts: np.ndarray) -> None:
        n = len(ts)
        self.order = np.lexsort((ts, group))
        self.group, self.ts = group[self.order].astype(np.int64), ts[self.order]
        rel = self.ts - (ts.min() if n else 0) + features.MAX_WINDOW_S + 1  # t - W stays inside the group's block
        span = int(rel.max()) + 1 if n else 1
        self.key = self.group * span + rel
        self.hi = np.searchsorted(self.key, self.key, side="left")  # first row of the group at time >= t
        first = np.r_[True, self.group[1:] != self.group[:-1]] if n else np.zeros(0, bool)
        self.start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.zeros(0, np.int64)
        self._lo: dict[int, np.ndarray] = {}
        self._prefix: dict[str, np.ndarray] = {}

    def _lo_idx(self, window_s: int) -> np.ndarray:
        if window_s not in self._lo:
            self._lo[window_s] = np.searchsorted(self.key, self.key - window_s, side="left")
        return self._lo[window_s]

    def _at(self, name: str, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The group's exclusive prefix sum of x at positions idx (each within the row's own group block)."""
        if name not in self._prefix:
            self._prefix[name] = pd.Series(x[self.order]).groupby(self.group, sort=False).cumsum().to_numpy(np.float64)
        inclusive = self._prefix[name]
        return np.where(idx > self.start, inclusive[np.maximum(idx - 1, 0)], 0.0)

    def _back(self, v: np.ndarray) -> np.ndarray:
        out = np.empty_like(v)
        out[self.order] = v
        return out

    def total(self, name: str, x: np.ndarray, window_s: int) -> np.ndarray:
        lo, hi = self._lo_idx(window_s), self.hi
        return self._back(self._at(name, x, hi) - self._at(name, x, lo))

    def last_ts(self, window_s: int) -> np.ndarray:
        lo, hi = self._lo_idx(window_s), self.hi
        return self._back(np.where(hi > lo, self.ts[np.maximum(hi - 1, 0)].astype(np.float64), 0.0))


class NumpyOps:
    """Evaluates the feature expressions of ``features.FEATURES`` on whole columns (see ``_GroupWindows``)."""

    def __init__(self, base: dict[str, np.ndarray], card: np.ndarray, ts: np.ndarray) -> None:
        self._v = base
        self._card, self._ts = card.astype(np.int64), ts
        self._cache: dict[tuple[str, str, bool], np.ndarray] = {}
        self._windows: dict[bool, _GroupWindows] = {}

    # primitives, as features.RowOps / SparkOps
    def col(self, name: str) -> np.ndarray:
        return self._v[name]

    @staticmethod
    def where(cond, a, b) -> np.ndarray:
        return np.where(cond, a, b)

    @staticmethod
    def div(a, b, default: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b != 0, np.divide(a, np.where(b != 0, b, 1.0)), default)

    @staticmethod
    def greatest(a, b) -> np.ndarray:
        return np.maximum(a, b)

    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    asin = staticmethod(np.arcsin)
    radians = staticmethod(np.radians)

    @staticmethod
    def sqrt(x) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.sqrt(x)

    # history
    def _group_windows(self, same_category: bool) -> _GroupWindows:
        if same_category not in self._windows:
            group = self._card
            if same_category:
                group = self._card * len(features.CATEGORY_INDEX) + self._v["category_idx"].astype(np.int64)
            self._windows[same_category] = _GroupWindows(group, self._ts)
        return self._windows[same_category]

    def _source(self, what: str) -> np.ndarray:
        if what == "count":
            return np.ones(len(self._ts))
        if what == "sum":
            return self._v["amt"]
        if what == "sumsq":
            return self._v["amt"] * self._v["amt"]
        if what == "count_night":
            return self._v["is_night"]
        if what == "count_online":
            return self._v["is_online"]
        raise ValueError(f"unknown history aggregate {what!r}")

    def hist(self, what: str, window: str, same_category: bool = False) -> np.ndarray:
        key = (what, window, same_category)
        if key not in self._cache:
            gw = self._group_windows(same_category)
            if what == "last_ts":
                self._cache[key] = gw.last_ts(WINDOWS[window])
            else:
                self._cache[key] = gw.total(what, self._source(what), WINDOWS[window])
        return self._cache[key]


def card_keys(cc_num: pd.Series, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(card code per row, keyed hash per row) -- hashed once per distinct card, as ``card_key.card_key``."""
    codes, uniques = pd.factorize(cc_num.astype(str).str.strip(), sort=False)
    hashed = np.array([hashlib.sha256(f"{key}:{u}".encode()).hexdigest() for u in uniques], dtype=object)
    return codes.astype(np.int64), hashed[codes]


def build_features(tx: pd.DataFrame, key: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Curated transactions -> (one row per transaction sorted by card and time: ids, label, time, every feature;
    the positions in ``tx`` of those rows)."""
    code, ckey = card_keys(tx["cc_num"], key)
    ts_dt = tx["trans_date_trans_time"].to_numpy("datetime64[s]")
    ts = ts_dt.astype(np.int64)
    order = np.lexsort((ts, code))
    code, ckey, ts, ts_dt = code[order], ckey[order], ts[order], ts_dt[order]
    t = tx.iloc[order].reset_index(drop=True)
    when = pd.Series(ts_dt)
    hour = when.dt.hour.to_numpy(np.float64)
    category = t["category"].to_numpy(object)
    dob = t["dob"].to_numpy("datetime64[D]")
    base = {
        "ts_s": ts.astype(np.float64),
        "amt": t["amt"].to_numpy(np.float64),
        "category_idx": pd.Series(category).map(features.CATEGORY_INDEX).to_numpy(np.float64),
        "is_online": np.isin(category, sorted(features.ONLINE_CATEGORIES)).astype(np.float64),
        "hour": hour,
        "weekday": when.dt.weekday.to_numpy(np.float64),
        "is_night": ((hour >= features.NIGHT_START_HOUR) | (hour < features.NIGHT_END_HOUR)).astype(np.float64),
        "age_days": (ts_dt.astype("datetime64[D]") - dob).astype(np.int64).astype(np.float64),
        "gender_m": (t["gender"].to_numpy(object) == "M").astype(np.float64),
        "city_pop": t["city_pop"].to_numpy(np.float64),
        "lat": t["lat"].to_numpy(np.float64),
        "long": t["long"].to_numpy(np.float64),
        "merch_lat": t["merch_lat"].to_numpy(np.float64),
        "merch_long": t["merch_long"].to_numpy(np.float64),
    }
    ops = NumpyOps(base, code, ts)
    n = len(ts)
    out = {
        "trans_num": t["trans_num"].to_numpy(object),
        "card_key": ckey,
        "trans_date_trans_time": ts_dt,
        "ts_s": ts,
        "is_fraud": t["is_fraud"].to_numpy(np.int32),
        "year": when.dt.year.to_numpy(np.int32),
        "month": when.dt.month.to_numpy(np.int32),
    }
    for f in FEATURES:
        v = np.asarray(f.fn(ops), dtype=np.float64)
        out[f.name] = np.broadcast_to(v, (n,)).copy() if v.ndim == 0 else v
    return pd.DataFrame(out), order


def check_features(
    tx: pd.DataFrame, feats: pd.DataFrame, order: np.ndarray, key: str, n: int, seed: int
) -> dict[str, Any]:
    """Recompute ``n`` random rows with the serving row engine; compare within rel/abs 1e-9 (the parity test's).

    Row i of ``feats`` is row ``order[i]`` of ``tx``; its history is the card's rows before it in time order.
    """
    if n <= 0 or len(feats) == 0:
        return {"rows_checked": 0}
    ts = feats["ts_s"].to_numpy(np.int64)
    ckey = feats["card_key"].to_numpy(object)
    starts = np.r_[0, np.flatnonzero(ckey[1:] != ckey[:-1]) + 1]
    block_start = starts[np.searchsorted(starts, np.arange(len(feats)), side="right") - 1]
    amt = feats["amt"].to_numpy(np.float64)
    cat = feats["category_idx"].to_numpy(np.float64).astype(np.int64)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(feats), size=min(n, len(feats)), replace=False)
    mismatches: list[tuple[str, str, float, float]] = []
    max_rel = 0.0
    for i in picks:
        s = block_start[i]
        history = features.History(ts[s:i].copy(), amt[s:i].copy(), cat[s:i].copy())
        row = tx.iloc[order[i]]
        assert row["trans_num"] == feats["trans_num"].iat[i]
        txn = {c: row[c] for c in features.INPUT_COLUMNS}
        assert card_keys(pd.Series([row["cc_num"]]), key)[1][0] == ckey[i]
        want = features.transaction_features(txn, history)
        for name, w in zip(FEATURE_NAMES, want, strict=True):
            got = float(feats[name].iat[i])
            if not math.isclose(got, w, rel_tol=1e-9, abs_tol=1e-9):
                mismatches.append((str(feats["trans_num"].iat[i]), name, got, w))
            if w != got:
                max_rel = max(max_rel, abs(got - w) / max(abs(w), 1e-300))
    return {
        "rows_checked": len(picks),
        "mismatches": len(mismatches),
        "first_mismatches": mismatches[:5],
        "max_relative_difference": max_rel,
        "rows_with_history": int(np.count_nonzero(feats["n_24h"].to_numpy()[picks] > 0)),
    }


# =================================================================================================
# Split, sample, fit, evaluate
# =================================================================================================


def split_labels(dates: np.ndarray, ts_split: split.TimeSplit) -> np.ndarray:
    """Like ``split.with_split``: by the transaction's calendar date."""
    d = dates.astype("datetime64[D]")
    return np.where(
        d >= np.datetime64(ts_split.test_from),
        "test",
        np.where(d >= np.datetime64(ts_split.validation_from), "validation", "train"),
    )


def bounded_sample(
    X: np.ndarray, y: np.ndarray, max_rows: int, seed: int, fraud_cap: int | None = None
) -> train.TrainingSample:
    """``train.sample_for_driver`` + ``collect_sample``: all frauds (up to max_rows / 2), Bernoulli legit sample."""
    n_rows, n_frauds = len(y), int(y.sum())
    n_legit = max(n_rows - n_frauds, 1)
    fraud_budget = min(n_frauds, fraud_cap if fraud_cap is not None else max_rows // 2)
    fraud_fraction = 1.0 if n_frauds == 0 else min(1.0, fraud_budget / n_frauds)
    legit_fraction = min(1.0, max(max_rows - fraud_budget, 1) / n_legit)
    rng = np.random.default_rng(seed)
    u = rng.random(n_rows)
    keep = np.where(y == 1, u < fraud_fraction, u < legit_fraction)
    Xs, ys = X[keep], y[keep]
    weight = np.where(ys == 1, 1.0 / fraud_fraction, 1.0 / legit_fraction)
    pos, neg = weight[ys == 1].sum(), weight[ys == 0].sum()
    if pos > 0:
        weight[ys == 1] *= neg / pos
    return train.TrainingSample(Xs, ys, weight, legit_fraction, n_rows, n_frauds)


def score_histogram(model, X: np.ndarray, y: np.ndarray) -> evaluate.ScoreHistogram:
    """Like ``evaluate.histogram(evaluate.score_spark(...))``: scores floored onto the 1e-6 grid, counted by class."""
    p = model.predict_proba(X)[:, 1]
    s = np.floor(p * evaluate.SCORE_BINS) / evaluate.SCORE_BINS
    grid, inv = np.unique(s, return_inverse=True)
    pos = np.bincount(inv, weights=(y == 1), minlength=len(grid)).astype(np.int64)
    neg = np.bincount(inv, weights=(y == 0), minlength=len(grid)).astype(np.int64)
    return evaluate.ScoreHistogram(grid.astype(np.float64), pos, neg)


def importances(model, X: np.ndarray, y: np.ndarray, seed: int) -> tuple[dict[str, float], str]:
    from sklearn.inspection import permutation_importance

    direct = model_feature_importances(model)
    if direct is not None:
        return direct, "impurity"
    s = bounded_sample(X, y, 20_000, seed)
    if s.y.sum() == 0:
        return {n: 0.0 for n in FEATURE_NAMES}, "none (no fraud in the validation period)"
    r = permutation_importance(
        model, s.X, s.y, scoring="average_precision", n_repeats=3, random_state=seed, sample_weight=s.weight, n_jobs=1
    )
    return {n: float(v) for n, v in zip(FEATURE_NAMES, r.importances_mean, strict=True)}, "permutation, PR-AUC drop"


# =================================================================================================
# The run
# =================================================================================================


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run(inputs: list[str], out: Path, check_rows: int) -> dict[str, Any]:
    settings = get_settings()
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        t0 = time.monotonic()
        yield
        timings[name] = round(time.monotonic() - t0, 2)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    key = secrets.token_hex(32)  # the Spark job's local store makes a random key too
    result: dict[str, Any] = {"engine": "pandas", "inputs": inputs, "timings_s": timings}

    with stage("validate"):
        files = list_inputs(inputs)
        if not files:
            raise RunFailed(f"no CSV files found in {inputs}")
        accepted: list[pd.DataFrame] = []
        quarantined: list[dict[str, Any]] = []
        rows_read = 0
        for f in files:
            try:
                contract.check_header(read_header(f))
            except contract.ContractError as exc:
                quarantined.append({"file": f.name, "error": str(exc)})
                continue
            raw = read_raw(f)
            rows_read += len(raw)
            typed, failed = validate_file(raw)
            del raw
            if failed:
                quarantined.append({"file": f.name, "error": "failed data contract validation", "failed": failed})
            else:
                accepted.append(typed)
        result.update(rows_read=rows_read, accepted_files=len(accepted), quarantined=quarantined)
        if not accepted:
            raise RunFailed("no input file passed validation")

    with stage("transactions_table"):
        tx = pd.concat(accepted, ignore_index=True) if len(accepted) > 1 else accepted[0]
        del accepted
        if len(files) > 1:  # the latest file wins a duplicate trans_num
            tx = tx.drop_duplicates(contract.ID, keep="last", ignore_index=True)
        ts = tx[contract.TIMESTAMP]
        tx.assign(year=ts.dt.year, month=ts.dt.month).to_parquet(
            out / "transactions", partition_cols=["year", "month"], index=False
        )
        result["rows"] = len(tx)

    with stage("features_table"):
        feats, order = build_features(tx, key)
        feats.to_parquet(out / "features", partition_cols=["year", "month"], index=False)

    t0 = time.monotonic()
    result["feature_check"] = check_features(tx, feats, order, key, check_rows, settings.random_seed)
    result["feature_check"]["seconds"] = round(time.monotonic() - t0, 2)
    del tx, order

    with stage("split"):
        dates = feats["trans_date_trans_time"].to_numpy("datetime64[s]")
        lo, hi = pd.Timestamp(dates.min()).to_pydatetime(), pd.Timestamp(dates.max()).to_pydatetime()
        ts_split = split.choose_split(lo, hi, settings.test_months, settings.validation_months)
        labels = split_labels(dates, ts_split)
        y_all = feats["is_fraud"].to_numpy(np.int64)
        splits: dict[str, dict[str, Any]] = {}
        for name in ("train", "validation", "test"):
            m = labels == name
            rows = int(m.sum())
            if rows == 0:
                raise RunFailed(f"the {name} period is empty ({ts_split.describe()})")
            splits[name] = {
                "rows": rows,
                "frauds": int(y_all[m].sum()),
                "start": str(dates[m].min()).replace("T", " "),
                "end": str(dates[m].max()).replace("T", " "),
            }
        X_all = feats[list(FEATURE_NAMES)].to_numpy(np.float64)
        del feats
        parts = {name: (X_all[labels == name], y_all[labels == name]) for name in ("train", "validation", "test")}
        del X_all
        result["splits"] = splits

    with stage("train_sample"):
        sample = bounded_sample(*parts["train"], settings.max_training_rows, settings.random_seed)
        result["training_sample"] = sample.describe() | {"max_training_rows": settings.max_training_rows}

    model_type = settings.model
    with stage(f"fit_{model_type}"):
        model = train.fit(model_type, sample, settings.random_seed)

    with stage(f"evaluate_{model_type}"):
        val_h = score_histogram(model, *parts["validation"])
        threshold, val_f1 = evaluate.best_f1_threshold(val_h)
        m = evaluate.metrics(score_histogram(model, *parts["test"]), threshold)
        m["threshold_method"] = f"max F1 on the validation period (validation F1 {val_f1:.4f})"

    with stage("importance"):
        imp, method = importances(model, *parts["validation"], settings.random_seed)

    with stage("artifact"):
        (out / "model.pkl").write_bytes(pickle.dumps(model))
        doc = {k: m[k] for k in HEADLINE} | {"confusion_matrix": m["confusion_matrix"], "splits": splits}
        doc |= {"importances": imp, "importance_method": method, "split": ts_split.describe()}
        (out / "metrics.json").write_text(json.dumps(doc, indent=2, default=str))

    result["model"] = model_type
    result["metrics"] = {k: m[k] for k in HEADLINE}
    result["total_s"] = round(sum(timings.values()), 2)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", nargs="+", required=True, metavar="PATH", help="CSV files or folders of CSVs")
    p.add_argument("--out", required=True, help="output folder (replaced): Parquet tables, model, metrics")
    p.add_argument(
        "--check-features", type=int, default=1000, metavar="N", help="rows to recompute with the row engine"
    )
    args = p.parse_args(argv)
    started = time.monotonic()
    try:
        result = run(args.input, Path(args.out), args.check_features)
    except (RunFailed, split.SplitError, ValueError) as exc:
        print(json.dumps({"engine": "pandas", "error": f"{type(exc).__name__}: {exc}"}))
        return 1
    result["wall_s"] = round(time.monotonic() - started, 2)
    print(json.dumps(result, default=str))
    check = result.get("feature_check", {})
    return 4 if check.get("mismatches") else 0


if __name__ == "__main__":
    sys.exit(main())
