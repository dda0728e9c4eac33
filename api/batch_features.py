"""The batch feature engine: the same ``features.FEATURES`` expressions evaluated over numpy arrays, one
element per transaction of a batch, so /v1/score/batch costs a few array operations per feature instead
of one Python evaluation per transaction.

The primitives mirror ``features.RowOps`` (the per-transaction engine) element-wise: the same columns,
``np.where`` for ``where``, a guarded division for ``div``, numpy's math for ``math``. A history
aggregate over ``[t - W, t - 1]`` finds each transaction's slice of its card's sorted history with one
``searchsorted`` for the whole batch and reduces the slices: sums in numpy's own pairwise order for all
slices at once (``pairwise_sums``), counts from exact integer prefix sums. Values equal the row engine's
bit for bit; ``tests/api/test_batch_features.py`` checks them, and the scores against the pipeline's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from fraud_detection import features

Record = tuple[int, float, int]  # (epoch seconds, amount, category index), as the history stores it

_TS_BITS = 34  # epoch seconds to 2514: the low bits of a (group, time) sort key
_ONLINE = np.array(sorted(features.CATEGORY_INDEX[c] for c in features.ONLINE_CATEGORIES), np.int64)
_CATEGORY_INDEX = features.CATEGORY_INDEX
_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_SECOND = timedelta(seconds=1)


def base_columns(txns: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Validated transactions -> the per-transaction primitives ``RowOps`` computes, as arrays."""
    # local wall-clock time read as UTC (``features.epoch_seconds``); whole seconds, as the row engine
    ts = np.array([(t["trans_date_trans_time"] - _EPOCH) // _SECOND for t in txns], np.int64)
    dob_days = np.array([t["dob"].toordinal() for t in txns], np.int64) - _EPOCH_ORDINAL
    category_idx = np.array([_CATEGORY_INDEX[t["category"]] for t in txns], np.int64)
    hour = (ts % features.DAY) // features.HOUR
    numbers = np.array([(t["amt"], t["city_pop"], t["lat"], t["long"], t["merch_lat"], t["merch_long"]) for t in txns])
    numbers = numbers.reshape(len(txns), 6).astype(np.float64, copy=False)
    return {
        "ts_s": ts.astype(np.float64),
        "amt": numbers[:, 0].copy(),
        "category_idx": category_idx.astype(np.float64),
        "is_online": np.isin(category_idx, _ONLINE).astype(np.float64),
        "hour": hour.astype(np.float64),
        "weekday": ((ts // features.DAY + 3) % 7).astype(np.float64),  # 1970-01-01 was a Thursday (3)
        "is_night": ((hour >= features.NIGHT_START_HOUR) | (hour < features.NIGHT_END_HOUR)).astype(np.float64),
        "age_days": (ts // features.DAY - dob_days).astype(np.float64),
        "gender_m": np.array([t["gender"] == "M" for t in txns], np.float64),
        "city_pop": numbers[:, 1].copy(),
        "lat": numbers[:, 2].copy(),
        "long": numbers[:, 3].copy(),
        "merch_lat": numbers[:, 4].copy(),
        "merch_long": numbers[:, 5].copy(),
    }


@dataclass(frozen=True)
class _Grouped:
    """History rows sorted by (group, time), and each batch transaction's group."""

    key: np.ndarray  # int64 (group << _TS_BITS) + ts, ascending
    ts: np.ndarray
    amt: np.ndarray  # padded with one 0 (reduceat reads one past a slice's end)
    amt_sq: np.ndarray
    cum_night: np.ndarray  # prefix counts, length rows + 1
    cum_online: np.ndarray
    txn_group: np.ndarray  # int64 per batch transaction


class BatchHistory:
    """Every card's known transactions (stored and in the batch), indexed for window lookups."""

    def __init__(self, card_of_txn: Sequence[int], rows: Sequence[tuple[int, Record]], txn_category: np.ndarray):
        """``card_of_txn``: each batch transaction's card number (0..cards-1); ``rows``: (card number,
        record) of every known transaction of those cards; ``txn_category``: each transaction's category."""
        card = np.fromiter((c for c, _ in rows), np.int64, len(rows))
        ts = np.fromiter((r[0] for _, r in rows), np.int64, len(rows))
        amt = np.fromiter((r[1] for _, r in rows), np.float64, len(rows))
        cat = np.fromiter((r[2] for _, r in rows), np.int64, len(rows))
        card_of_txn = np.asarray(card_of_txn, np.int64)
        n_cat = len(features.CATEGORY_INDEX)
        self.by_card = _group(card, ts, amt, cat, card_of_txn)
        self.by_card_category = _group(card * n_cat + cat, ts, amt, cat, card_of_txn * n_cat + txn_category)

    @classmethod
    def merge(
        cls,
        card_keys: Sequence[str],
        trans_ids: Sequence[str],
        records: Sequence[Record],
        stored: Mapping[str, Mapping[tuple[int, str], Record]],
        txn_category: np.ndarray,
    ) -> BatchHistory:
        """The batch's transactions (card key, id, record each) added to their cards' ``stored`` ones
        (card key -> {(ts, trans_id): record}, as ``CardHistoryStore.read_many`` returns them): a
        transaction both stored and in the batch counts once."""
        card_no: dict[str, int] = {}
        card_of_txn = [card_no.setdefault(k, len(card_no)) for k in card_keys]
        known = {k: dict(stored.get(k, {})) for k in card_no}
        for k, tid, rec in zip(card_keys, trans_ids, records, strict=True):
            known[k][(rec[0], tid)] = rec
        rows = [(card_no[k], rec) for k, recs in known.items() for rec in recs.values()]
        return cls(card_of_txn, rows, txn_category)


def _group(group: np.ndarray, ts: np.ndarray, amt: np.ndarray, cat: np.ndarray, txn_group: np.ndarray) -> _Grouped:
    key = (group << _TS_BITS) + ts
    order = np.argsort(key, kind="stable")
    key, ts, amt, cat = key[order], ts[order], amt[order], cat[order]
    hour = (ts % features.DAY) // features.HOUR
    night = (hour >= features.NIGHT_START_HOUR) | (hour < features.NIGHT_END_HOUR)
    return _Grouped(
        key=key,
        ts=ts,
        amt=np.append(amt, 0.0),
        amt_sq=np.append(amt * amt, 0.0),
        cum_night=np.concatenate(([0], np.cumsum(night))),
        cum_online=np.concatenate(([0], np.cumsum(np.isin(cat, _ONLINE)))),
        txn_group=txn_group,
    )


def _slice_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``max(values[lo[i]:hi[i]])`` for every i (0 where the slice is empty)."""
    if not len(lo):
        return np.zeros(0)
    idx = np.empty(2 * len(lo), np.int64)
    idx[0::2], idx[1::2] = lo, hi
    return np.where(hi > lo, np.maximum.reduceat(values, idx)[0::2], 0.0)


_UNROLL, _BLOCK = 8, 128  # numpy's pairwise summation: 8 accumulators, blocks of up to 128


def pairwise_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``np.sum(values[lo[i]:hi[i]])`` for every i, bit for bit: numpy's own pairwise summation (as
    ``api.fast_features.numpy_sum`` spells it out) run for all slices at once. The row engines sum with
    ``np.sum``; a last-bit difference could flip a split whose threshold is a value seen in training, so
    a batch must not sum in another order. ``values`` ends with one padding element.
    """
    n = hi - lo
    out = np.zeros(len(lo))
    last = len(values) - 1
    small = np.nonzero(n < _UNROLL)[0]
    if len(small):
        s_lo, s_n = lo[small], n[small]
        acc = np.zeros(len(small))
        for k in range(int(s_n.max(initial=0))):  # res = 0.0; res += a[i] in order (adding 0.0 changes nothing)
            acc += np.where(k < s_n, values[np.minimum(s_lo + k, last)], 0.0)
        out[small] = acc
    mid = np.nonzero((n >= _UNROLL) & (n <= _BLOCK))[0]
    if len(mid):
        out[mid] = _unrolled_sums(values, lo[mid], n[mid], last)
    big = np.nonzero(n > _BLOCK)[0]
    if len(big):
        b_lo, b_n = lo[big], n[big]
        half = b_n // 2
        half -= half % _UNROLL
        out[big] = pairwise_sums(values, b_lo, b_lo + half) + pairwise_sums(values, b_lo + half, b_lo + b_n)
    return out


def _unrolled_sums(values: np.ndarray, lo: np.ndarray, n: np.ndarray, last: int) -> np.ndarray:
    """Slices of 8 to 128 values: 8 running sums, combined pairwise, then the remainder in order."""
    lanes = np.arange(_UNROLL)
    r = values[lo[:, None] + lanes]  # (slices, 8)
    end = n - n % _UNROLL
    for i in range(_UNROLL, int(end.max()), _UNROLL):
        live = (i < end)[:, None]
        r += np.where(live, values[np.minimum(lo[:, None] + i + lanes, last)], 0.0)
    res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
    for k in range(_UNROLL - 1):
        res += np.where(end + k < n, values[np.minimum(lo + end + k, last)], 0.0)
    return res


def _exact(fn: Any) -> Any:
    """A ``math`` function element-wise: numpy's own sin / cos may differ from libm in the last bit."""
    ufunc = np.frompyfunc(fn, 1, 1)
    return staticmethod(lambda c: ufunc(c).astype(np.float64))


class ArrayOps:
    """Evaluates feature expressions on a batch: numpy arrays, one element per transaction."""

    def __init__(self, cols: dict[str, np.ndarray], history: BatchHistory) -> None:
        self._v = cols
        self._h = history
        self._cache: dict[tuple[str, str, bool], np.ndarray] = {}
        self._bounds: dict[tuple[int, bool], tuple[np.ndarray, np.ndarray]] = {}

    def col(self, name: str) -> np.ndarray:
        return self._v[name]

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    @staticmethod
    def div(a: Any, b: Any, default: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b != 0, np.divide(a, b), default)

    @staticmethod
    def greatest(a: Any, b: Any) -> np.ndarray:
        return np.maximum(a, b)

    @staticmethod
    def sqrt(c: Any) -> np.ndarray:  # IEEE square root: correctly rounded, as math.sqrt
        with np.errstate(invalid="ignore"):
            return np.sqrt(c)

    sin = _exact(math.sin)
    cos = _exact(math.cos)
    asin = _exact(math.asin)
    radians = _exact(math.radians)

    def _window(self, window_s: int, same_category: bool) -> tuple[_Grouped, np.ndarray, np.ndarray]:
        g = self._h.by_card_category if same_category else self._h.by_card
        found = self._bounds.get((window_s, same_category))
        if found is None:
            t = self._v["ts_s"].astype(np.int64)
            base = g.txn_group << _TS_BITS
            lo = np.searchsorted(g.key, base + (t - window_s), side="left")
            hi = np.searchsorted(g.key, base + t, side="left")  # ts <= t - 1
            found = self._bounds[(window_s, same_category)] = (lo, hi)
        return g, *found

    def hist(self, what: str, window: str, same_category: bool = False) -> np.ndarray:
        key = (what, window, same_category)
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = self._hist(what, features.WINDOWS[window], same_category)
        return value

    def _hist(self, what: str, window_s: int, same_category: bool) -> np.ndarray:
        g, lo, hi = self._window(window_s, same_category)
        if what == "count":
            return (hi - lo).astype(np.float64)
        if what == "sum":
            return pairwise_sums(g.amt, lo, hi)
        if what == "sumsq":
            return pairwise_sums(g.amt_sq, lo, hi)
        if what == "max":
            return _slice_max(g.amt, lo, hi)
        if what == "last_ts":
            return np.where(hi > lo, g.ts[np.maximum(hi - 1, 0)] if len(g.ts) else 0, 0).astype(np.float64)
        if what == "count_night":
            return (g.cum_night[hi] - g.cum_night[lo]).astype(np.float64)
        if what == "count_online":
            return (g.cum_online[hi] - g.cum_online[lo]).astype(np.float64)
        raise ValueError(f"unknown history aggregate {what!r}")


def batch_features(cols: dict[str, np.ndarray], history: BatchHistory) -> np.ndarray:
    """Feature matrix (rows: transactions, columns: ``features.FEATURE_NAMES``)."""
    ops = ArrayOps(cols, history)
    n = len(cols["ts_s"])
    out = np.empty((n, len(features.FEATURES)), np.float64)
    for j, f in enumerate(features.FEATURES):
        out[:, j] = np.broadcast_to(np.asarray(f.fn(ops), np.float64), (n,))
    return out
