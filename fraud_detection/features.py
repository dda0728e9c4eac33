"""Feature definitions: each feature is written once and evaluated by two engines.

A feature is a small function of an *ops* object. ``SparkOps`` evaluates it to a Spark Column for
training (whole tables, per-card windows); ``RowOps`` evaluates it to a float for serving, from one
transaction plus that card's recent history. Arithmetic and comparisons are ordinary Python operators
(both Spark Columns and floats support them); conditionals, safe division, math and history windows go
through the ops object so each engine does the same thing its own way. ``tests/test_feature_parity.py``
runs both engines on generated data and requires equal values.

History features look only at the card's *earlier* transactions (strictly before this one, within at
most ``MAX_WINDOW_S``), so serving needs at most that much history per card. The card is identified by
its keyed hash (``card_key``); the raw card number is never a feature.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np

from fraud_detection import contract

HOUR = 3600
DAY = 24 * HOUR
WINDOWS: dict[str, int] = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
MAX_WINDOW_S = max(WINDOWS.values())

CATEGORY_INDEX: dict[str, int] = {c: i for i, c in enumerate(contract.CATEGORIES)}
ONLINE_CATEGORIES = frozenset(c for c in contract.CATEGORIES if c.endswith("_net"))
NIGHT_START_HOUR, NIGHT_END_HOUR = 22, 4  # [22:00, 04:00)
STD_FLOOR = 0.01  # a spread below one cent counts as no spread (keeps both engines in agreement)
EARTH_RADIUS_KM = 6371.0

# Input columns a transaction must carry to be featurised (the API requires these, the rest optional).
INPUT_COLUMNS: tuple[str, ...] = (
    "trans_date_trans_time",
    "cc_num",
    "category",
    "amt",
    "gender",
    "lat",
    "long",
    "city_pop",
    "dob",
    "merch_lat",
    "merch_long",
)

# History aggregates over a card's earlier transactions: name -> (what, window).
HistoryAgg = tuple[str, str, bool]


@dataclass(frozen=True)
class Feature:
    name: str
    fn: Callable[[Any], Any]
    description: str
    kind: str = "continuous"  # continuous | binary | nominal | ordinal (drift tests pick their test by it)


def _std(o: Any, window: str) -> Any:
    """Sample standard deviation of the card's amounts from count, sum and sum of squares; 0 below one cent."""
    n, total, squares = o.hist("count", window), o.hist("sum", window), o.hist("sumsq", window)
    var = o.div(squares - o.div(total * total, n, 0.0), n - 1, 0.0)
    return o.where(var > STD_FLOOR * STD_FLOOR, o.sqrt(o.greatest(var, 0.0)), 0.0)


def _haversine(o: Any) -> Any:
    lat1, lon1 = o.radians(o.col("lat")), o.radians(o.col("long"))
    lat2, lon2 = o.radians(o.col("merch_lat")), o.radians(o.col("merch_long"))
    # squares as products: ``x ** 2`` is libm's pow on a Python float but a multiplication in numpy
    # (they can differ in the last bit), while ``x * x`` is one IEEE multiplication in every engine
    half_dlat, half_dlon = o.sin((lat2 - lat1) / 2), o.sin((lon2 - lon1) / 2)
    a = half_dlat * half_dlat + o.cos(lat1) * o.cos(lat2) * (half_dlon * half_dlon)
    return 2 * EARTH_RADIUS_KM * o.asin(o.sqrt(a))


FEATURES: tuple[Feature, ...] = (
    # --- this transaction -------------------------------------------------------------------------
    Feature("amt", lambda o: o.col("amt"), "amount in dollars"),
    Feature("category_idx", lambda o: o.col("category_idx"), "merchant category (index in the contract)", "nominal"),
    Feature("is_online", lambda o: o.col("is_online"), "category is a card-not-present (_net) one", "binary"),
    Feature("hour", lambda o: o.col("hour"), "local hour of day", "ordinal"),
    Feature("weekday", lambda o: o.col("weekday"), "day of week, Monday = 0", "ordinal"),
    Feature("is_night", lambda o: o.col("is_night"), "between 22:00 and 04:00", "binary"),
    Feature("age_years", lambda o: o.col("age_days") / 365.25, "cardholder age at the transaction"),
    Feature("gender_m", lambda o: o.col("gender_m"), "cardholder gender is M", "binary"),
    Feature("city_pop", lambda o: o.col("city_pop"), "population of the cardholder's city"),
    Feature("distance_km", _haversine, "great-circle distance from cardholder home to merchant"),
    # --- this card's earlier transactions ---------------------------------------------------------
    Feature("n_1h", lambda o: o.hist("count", "1h"), "card's transactions in the previous hour", "ordinal"),
    Feature("n_24h", lambda o: o.hist("count", "24h"), "card's transactions in the previous 24 h", "ordinal"),
    Feature("n_7d", lambda o: o.hist("count", "7d"), "card's transactions in the previous 7 days", "ordinal"),
    Feature("n_30d", lambda o: o.hist("count", "30d"), "card's transactions in the previous 30 days", "ordinal"),
    Feature("sum_amt_1h", lambda o: o.hist("sum", "1h"), "card's spend in the previous hour"),
    Feature("sum_amt_24h", lambda o: o.hist("sum", "24h"), "card's spend in the previous 24 h"),
    Feature("sum_amt_7d", lambda o: o.hist("sum", "7d"), "card's spend in the previous 7 days"),
    Feature("mean_amt_30d", lambda o: o.div(o.hist("sum", "30d"), o.hist("count", "30d"), 0.0), "card's habit"),
    Feature("std_amt_30d", lambda o: _std(o, "30d"), "spread of the card's amounts over 30 days (0: < 1 cent)"),
    Feature(
        "amt_to_mean_30d",
        lambda o: o.div(o.col("amt") * o.hist("count", "30d"), o.hist("sum", "30d"), -1.0),
        "amount relative to the card's 30-day mean (-1: no history)",
    ),
    Feature(
        "amt_z_30d",
        lambda o: o.where(
            _std(o, "30d") > 0,
            o.div(o.col("amt") - o.div(o.hist("sum", "30d"), o.hist("count", "30d"), 0.0), _std(o, "30d"), 0.0),
            0.0,
        ),
        "amount's z-score against the card's 30-day amounts (0: too little history or spread)",
    ),
    Feature(
        "amt_to_mean_7d",
        lambda o: o.div(o.col("amt") * o.hist("count", "7d"), o.hist("sum", "7d"), -1.0),
        "amount relative to the card's 7-day mean (-1: no history)",
    ),
    Feature(
        "secs_since_prev",
        lambda o: o.where(o.hist("count", "30d") > 0, o.col("ts_s") - o.hist("last_ts", "30d"), float(MAX_WINDOW_S)),
        "seconds since the card's previous transaction (capped at 30 days)",
    ),
    Feature(
        "n_night_24h", lambda o: o.hist("count_night", "24h"), "card's night transactions, previous 24 h", "ordinal"
    ),
    Feature(
        "n_online_24h", lambda o: o.hist("count_online", "24h"), "card's online transactions, previous 24 h", "ordinal"
    ),
    Feature(
        "spend_24h_to_daily_30d",
        lambda o: o.div(o.hist("sum", "24h") * 30.0, o.hist("sum", "30d"), -1.0),
        "spend in the previous 24 h relative to the card's mean daily spend over 30 days",
    ),
    Feature(
        "night_share_30d",
        lambda o: o.div(o.hist("count_night", "30d"), o.hist("count", "30d"), -1.0),
        "share of the card's 30-day transactions made at night (-1: no history)",
    ),
    Feature(
        "online_share_30d",
        lambda o: o.div(o.hist("count_online", "30d"), o.hist("count", "30d"), -1.0),
        "share of the card's 30-day transactions in online categories (-1: no history)",
    ),
    Feature(
        "n_same_category_30d",
        lambda o: o.hist("count", "30d", same_category=True),
        "card's transactions in this category in the previous 30 days",
        "ordinal",
    ),
    Feature(
        "amt_to_category_mean_30d",
        lambda o: o.div(
            o.col("amt") * o.hist("count", "30d", same_category=True), o.hist("sum", "30d", same_category=True), -1.0
        ),
        "amount relative to the card's 30-day mean in this category (-1: no history there)",
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
FEATURE_KINDS: dict[str, str] = {f.name: f.kind for f in FEATURES}


# =================================================================================================
# Serving engine: one transaction + the card's history
# =================================================================================================


@dataclass(frozen=True)
class History:
    """A card's earlier transactions: epoch seconds (local time read as UTC), amounts, category indexes."""

    ts: np.ndarray
    amt: np.ndarray
    category_idx: np.ndarray

    @staticmethod
    def empty() -> History:
        return History(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))

    @staticmethod
    def from_records(records: list[tuple[int, float, int]]) -> History:
        if not records:
            return History.empty()
        ts, amt, cat = zip(*records, strict=False)
        return History(np.asarray(ts, np.int64), np.asarray(amt, np.float64), np.asarray(cat, np.int64))


def parse_timestamp(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.strptime(value.strip(), contract.TIMESTAMP_FORMAT_PY)


def parse_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.strptime(value.strip(), contract.DATE_FORMAT_PY).date()


def epoch_seconds(ts: datetime) -> int:
    """Local wall-clock time read as UTC, exactly as Spark does with session time zone UTC."""
    return calendar.timegm(ts.timetuple())


def _is_night(hour: int) -> bool:
    return hour >= NIGHT_START_HOUR or hour < NIGHT_END_HOUR


def history_record(txn: Mapping[str, Any]) -> tuple[int, float, int]:
    """What the online store keeps of a scored transaction for the card's later features."""
    return (
        epoch_seconds(parse_timestamp(txn["trans_date_trans_time"])),
        float(txn["amt"]),
        CATEGORY_INDEX[txn["category"]],
    )


class RowOps:
    """Evaluates feature expressions on one transaction (floats) and the card's history (numpy)."""

    __slots__ = ("_v", "_h", "_cache")

    def __init__(self, txn: Mapping[str, Any], history: History) -> None:
        ts = parse_timestamp(txn["trans_date_trans_time"])
        dob = parse_date(txn["dob"])
        category = txn["category"]
        self._v: dict[str, float] = {
            "ts_s": float(epoch_seconds(ts)),
            "amt": float(txn["amt"]),
            "category_idx": float(CATEGORY_INDEX[category]),
            "is_online": 1.0 if category in ONLINE_CATEGORIES else 0.0,
            "hour": float(ts.hour),
            "weekday": float(ts.weekday()),
            "is_night": 1.0 if _is_night(ts.hour) else 0.0,
            "age_days": float((ts.date() - dob).days),
            "gender_m": 1.0 if txn["gender"] == "M" else 0.0,
            "city_pop": float(txn["city_pop"]),
            "lat": float(txn["lat"]),
            "long": float(txn["long"]),
            "merch_lat": float(txn["merch_lat"]),
            "merch_long": float(txn["merch_long"]),
        }
        self._h = history
        self._cache: dict[HistoryAgg, float] = {}

    # primitives
    def col(self, name: str) -> float:
        return self._v[name]

    @staticmethod
    def where(cond: bool, a: float, b: float) -> float:
        return a if cond else b

    @staticmethod
    def div(a: float, b: float, default: float) -> float:
        return a / b if b != 0 else default

    greatest = staticmethod(max)

    sin = staticmethod(math.sin)
    cos = staticmethod(math.cos)
    asin = staticmethod(math.asin)
    sqrt = staticmethod(math.sqrt)
    radians = staticmethod(math.radians)

    def hist(self, what: str, window: str, same_category: bool = False) -> float:
        key = (what, window, same_category)
        if key not in self._cache:
            self._cache[key] = self._hist(what, WINDOWS[window], same_category)
        return self._cache[key]

    def _hist(self, what: str, window_s: int, same_category: bool) -> float:
        h, t = self._h, int(self._v["ts_s"])
        mask = (h.ts >= t - window_s) & (h.ts <= t - 1)
        if same_category:
            mask &= h.category_idx == int(self._v["category_idx"])
        n = int(np.count_nonzero(mask))
        if what == "count":
            return float(n)
        amt = h.amt[mask]
        if what == "sum":
            return float(amt.sum()) if n else 0.0
        if what == "sumsq":  # numpy's pairwise sum, as for "sum" (the serving engines reproduce it exactly)
            return float((amt * amt).sum()) if n else 0.0
        if what == "last_ts":
            return float(h.ts[mask].max()) if n else 0.0
        hours = (h.ts[mask] % DAY) // HOUR
        if what == "count_night":
            return float(np.count_nonzero((hours >= NIGHT_START_HOUR) | (hours < NIGHT_END_HOUR)))
        if what == "count_online":
            online = np.isin(h.category_idx[mask], [CATEGORY_INDEX[c] for c in sorted(ONLINE_CATEGORIES)])
            return float(np.count_nonzero(online))
        raise ValueError(f"unknown history aggregate {what!r}")


def transaction_features(txn: Mapping[str, Any], history: History) -> list[float]:
    """Feature vector (in FEATURE_NAMES order) of one transaction given its card's earlier ones."""
    ops = RowOps(txn, history)
    return [float(f.fn(ops)) for f in FEATURES]


# =================================================================================================
# Training engine: Spark
# =================================================================================================


class SparkOps:
    """Evaluates feature expressions to Spark Columns over a table with per-card windows.

    A history aggregate over ``[t - W, t - 1]`` is computed as the difference of two cumulative
    (unbounded-preceding) frames, ``(-inf, t - 1] - (-inf, t - W - 1]``: Spark evaluates those
    incrementally in one pass per card, where a sliding range frame would re-aggregate the whole frame
    for every row. ``hist`` only records which cumulative columns it needs; ``spark_features``
    materialises them once and then evaluates the features over them.
    """

    def __init__(self) -> None:
        from pyspark.sql import functions as F

        self.F = F
        self.needed: set[tuple[str, int, bool]] = set()  # (aggregate, frame end offset, same category)

    def col(self, name: str):
        return self.F.col(name).cast("double")

    def where(self, cond, a, b):
        return self.F.when(cond, a).otherwise(b)

    def div(self, a, b, default: float):
        return self.F.when(b != 0, a / b).otherwise(self.F.lit(default))

    def greatest(self, a, b):
        return self.F.greatest(a, self.F.lit(b) if isinstance(b, float) else b)

    def sin(self, c):
        return self.F.sin(c)

    def cos(self, c):
        return self.F.cos(c)

    def asin(self, c):
        return self.F.asin(c)

    def sqrt(self, c):
        return self.F.sqrt(c)

    def radians(self, c):
        return self.F.radians(c)

    @staticmethod
    def cum_name(what: str, end: int, same_category: bool) -> str:
        return f"_cum_{what}_{-end}{'_cat' if same_category else ''}"

    def _cum(self, what: str, end: int, same_category: bool):
        self.needed.add((what, end, same_category))
        return self.F.col(self.cum_name(what, end, same_category))

    def hist(self, what: str, window: str, same_category: bool = False):
        if what == "last_ts":
            return self._cum("last_ts", -1, same_category)
        return self._cum(what, -1, same_category) - self._cum(what, -WINDOWS[window] - 1, same_category)

    def cumulative_columns(self) -> list:
        """The recorded cumulative aggregates as window columns over each card's earlier transactions."""
        from pyspark.sql import Window

        F = self.F
        by_card = Window.partitionBy("card_key").orderBy("ts_s")
        by_card_category = Window.partitionBy("card_key", "category_idx").orderBy("ts_s")
        source = {
            "count": F.lit(1.0),
            "sum": F.col("amt"),
            "sumsq": F.col("amt") * F.col("amt"),
            "count_night": F.col("is_night").cast("double"),
            "count_online": F.col("is_online").cast("double"),
        }
        cols = []
        for what, end, same_category in sorted(self.needed):
            frame = (by_card_category if same_category else by_card).rangeBetween(Window.unboundedPreceding, end)
            if what == "last_ts":
                agg = F.max("ts_s").over(frame).cast("double")
            elif what in source:
                agg = F.sum(source[what]).over(frame)
            else:
                raise ValueError(f"unknown history aggregate {what!r}")
            cols.append(F.coalesce(agg, F.lit(0.0)).alias(self.cum_name(what, end, same_category)))
        return cols


def spark_base_columns(transactions, key: str):  # DataFrame -> DataFrame
    """Typed transactions -> the primitives both engines start from (card_key, ts_s, hour, ...)."""
    from pyspark.sql import functions as F

    from fraud_detection.card_key import spark_card_key, spark_stored_trans_id

    category_idx = F.lit(None).cast("int")
    for name, idx in CATEGORY_INDEX.items():
        category_idx = F.when(F.col("category") == name, F.lit(idx)).otherwise(category_idx)
    hour = F.hour("trans_date_trans_time")
    return transactions.select(
        spark_stored_trans_id(F.col("trans_num"), key).alias("trans_num"),  # as the API stores it
        spark_card_key(F.col("cc_num"), key).alias("card_key"),
        "trans_date_trans_time",
        F.unix_timestamp("trans_date_trans_time").alias("ts_s"),
        F.col("is_fraud").cast("int").alias("is_fraud"),
        "amt",
        category_idx.alias("category_idx"),
        F.col("category").isin(*sorted(ONLINE_CATEGORIES)).cast("int").alias("is_online"),
        hour.alias("hour"),
        ((F.dayofweek("trans_date_trans_time") + 5) % 7).alias("weekday"),
        ((hour >= NIGHT_START_HOUR) | (hour < NIGHT_END_HOUR)).cast("int").alias("is_night"),
        F.datediff(F.to_date("trans_date_trans_time"), F.col("dob")).alias("age_days"),
        (F.col("gender") == "M").cast("int").alias("gender_m"),
        "city_pop",
        "lat",
        "long",
        "merch_lat",
        "merch_long",
    )


def spark_features(transactions, key: str):  # DataFrame -> DataFrame
    """Typed transactions -> one row per transaction: ids, label, event time, and every feature."""
    from pyspark.sql import functions as F

    base = spark_base_columns(transactions, key)
    ops = SparkOps()
    feature_cols = [f.fn(ops).cast("double").alias(f.name) for f in FEATURES]  # records what windows need
    return base.select("*", *ops.cumulative_columns()).select(
        "trans_num",
        "card_key",
        "trans_date_trans_time",
        "ts_s",
        "is_fraud",
        F.year("trans_date_trans_time").alias("year"),
        F.month("trans_date_trans_time").alias("month"),
        *feature_cols,
    )
