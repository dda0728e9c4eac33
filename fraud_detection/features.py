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
HistoryAgg = tuple[str, str]


@dataclass(frozen=True)
class Feature:
    name: str
    fn: Callable[[Any], Any]
    description: str
    kind: str = "continuous"  # continuous | binary | nominal | ordinal (drift tests pick their test by it)


def _haversine(o: Any) -> Any:
    lat1, lon1 = o.radians(o.col("lat")), o.radians(o.col("long"))
    lat2, lon2 = o.radians(o.col("merch_lat")), o.radians(o.col("merch_long"))
    a = o.sin((lat2 - lat1) / 2) ** 2 + o.cos(lat1) * o.cos(lat2) * o.sin((lon2 - lon1) / 2) ** 2
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
    Feature("std_amt_30d", lambda o: o.hist("std", "30d"), "spread of the card's amounts over 30 days"),
    Feature(
        "amt_to_mean_30d",
        lambda o: o.div(o.col("amt") * o.hist("count", "30d"), o.hist("sum", "30d"), -1.0),
        "amount relative to the card's 30-day mean (-1: no history)",
    ),
    Feature(
        "amt_z_30d",
        lambda o: o.where(
            o.hist("std", "30d") > STD_FLOOR,
            o.div(o.col("amt") - o.div(o.hist("sum", "30d"), o.hist("count", "30d"), 0.0), o.hist("std", "30d"), 0.0),
            0.0,
        ),
        "amount's z-score against the card's 30-day amounts (0: too little history)",
    ),
    Feature(
        "amt_to_max_30d",
        lambda o: o.div(o.col("amt"), o.hist("max", "30d"), -1.0),
        "amount relative to the card's largest in 30 days (-1: no history)",
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

    sin = staticmethod(math.sin)
    cos = staticmethod(math.cos)
    asin = staticmethod(math.asin)
    sqrt = staticmethod(math.sqrt)
    radians = staticmethod(math.radians)

    def hist(self, what: str, window: str) -> float:
        key = (what, window)
        if key not in self._cache:
            self._cache[key] = self._hist(what, WINDOWS[window])
        return self._cache[key]

    def _hist(self, what: str, window_s: int) -> float:
        h, t = self._h, int(self._v["ts_s"])
        mask = (h.ts >= t - window_s) & (h.ts <= t - 1)
        n = int(np.count_nonzero(mask))
        if what == "count":
            return float(n)
        amt = h.amt[mask]
        if what == "sum":
            return float(amt.sum()) if n else 0.0
        if what == "std":
            return float(np.std(amt, ddof=1)) if n >= 2 else 0.0
        if what == "max":
            return float(amt.max()) if n else 0.0
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
    """Evaluates feature expressions to Spark Columns over a table with per-card windows."""

    def __init__(self) -> None:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        self.F = F
        self._by_card = Window.partitionBy("card_key").orderBy("ts_s")

    def col(self, name: str):
        return self.F.col(name).cast("double")

    def where(self, cond, a, b):
        return self.F.when(cond, a).otherwise(b)

    def div(self, a, b, default: float):
        return self.F.when(b != 0, a / b).otherwise(self.F.lit(default))

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

    def hist(self, what: str, window: str):
        F = self.F
        w = self._by_card.rangeBetween(-WINDOWS[window], -1)
        if what == "count":
            return F.count(F.lit(1)).over(w).cast("double")
        if what == "sum":
            return F.coalesce(F.sum("amt").over(w), F.lit(0.0))
        if what == "std":
            return F.coalesce(F.stddev_samp("amt").over(w), F.lit(0.0))
        if what == "max":
            return F.coalesce(F.max("amt").over(w), F.lit(0.0))
        if what == "last_ts":
            return F.coalesce(F.max("ts_s").over(w), F.lit(0)).cast("double")
        if what == "count_night":
            return F.coalesce(F.sum(F.col("is_night")).over(w), F.lit(0)).cast("double")
        if what == "count_online":
            return F.coalesce(F.sum(F.col("is_online")).over(w), F.lit(0)).cast("double")
        raise ValueError(f"unknown history aggregate {what!r}")


def spark_base_columns(transactions, key: str):  # DataFrame -> DataFrame
    """Typed transactions -> the primitives both engines start from (card_key, ts_s, hour, ...)."""
    from pyspark.sql import functions as F

    from fraud_detection.card_key import spark_card_key

    category_idx = F.lit(None).cast("int")
    for name, idx in CATEGORY_INDEX.items():
        category_idx = F.when(F.col("category") == name, F.lit(idx)).otherwise(category_idx)
    hour = F.hour("trans_date_trans_time")
    return transactions.select(
        "trans_num",
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
    return base.select(
        "trans_num",
        "card_key",
        "trans_date_trans_time",
        "ts_s",
        "is_fraud",
        F.year("trans_date_trans_time").alias("year"),
        F.month("trans_date_trans_time").alias("month"),
        *[f.fn(ops).cast("double").alias(f.name) for f in FEATURES],
    )
