"""Generated feature data for the drift tests: every feature of FEATURE_KINDS, independent columns.

``generate(seed, n)`` draws from one fixed distribution; ``shift=True`` changes exactly the features in
``SHIFTED`` (one of each kind) and nothing else. ``live_sample`` turns such data into what the
prediction log holds (transaction time, amount, score, feature vector) for the live-drift tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from fraud_detection.features import FEATURE_KINDS, FEATURE_NAMES

SHIFTED = {"amt": "continuous", "is_online": "binary", "category_idx": "nominal", "hour": "ordinal"}
N_CATEGORIES = 14


def generate(seed: int, n: int = 3000, shift: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for i, (name, kind) in enumerate(FEATURE_KINDS.items()):
        if kind == "continuous":
            # skewed, like amounts and ratios; a different scale per feature
            out[name] = rng.lognormal(mean=1.0 + 0.1 * i, sigma=0.8, size=n)
        elif kind == "binary":
            out[name] = (rng.random(n) < 0.3).astype(np.float64)
        elif kind == "nominal":
            p = np.linspace(1.0, 2.0, N_CATEGORIES)
            out[name] = rng.choice(N_CATEGORIES, size=n, p=p / p.sum()).astype(np.float64)
        else:  # ordinal: small counts with ties
            out[name] = rng.poisson(2.0 + 0.2 * i, size=n).astype(np.float64)
    out["hour"] = np.clip(np.round(rng.normal(13.0, 4.0, n)), 0, 23)
    if shift:
        out["amt"] = rng.lognormal(mean=1.3, sigma=0.8, size=n)  # was mean 1.0: amounts ~35% higher
        out["is_online"] = (rng.random(n) < 0.4).astype(np.float64)  # 30% -> 40% online
        p = np.linspace(1.0, 2.0, N_CATEGORIES)
        p[:3] *= 2.5  # three categories much more frequent
        out["category_idx"] = rng.choice(N_CATEGORIES, size=n, p=p / p.sum()).astype(np.float64)
        out["hour"] = np.clip(np.round(rng.normal(14.5, 4.0, n)), 0, 23)  # later in the day
    return out


# --- live drift: prediction-log rows and a reference profile ------------------------------------------

LIVE_START = datetime(2019, 9, 2)  # a Monday
VECTOR_SHIFTED = {"distance_km": "continuous", "n_24h": "ordinal"}  # features only the logged vector has


@dataclass
class LiveSample:
    """What the API logs per prediction: time, amount, score and the served vector (FEATURE_NAMES order)."""

    trans_time: list[str]
    amt: np.ndarray
    score: np.ndarray
    vectors: np.ndarray  # rows x len(FEATURE_NAMES)

    def columns(self) -> dict[str, np.ndarray]:
        """Every live column of the sample (what build_live_profile summarises for the reference)."""
        out = {name: self.vectors[:, i] for i, name in enumerate(FEATURE_NAMES)}
        return out | {"score": self.score}

    def rows(self, with_vectors: bool = True) -> list[tuple]:
        vectors = [list(map(float, v)) if with_vectors else None for v in self.vectors]
        return list(zip(self.trans_time, self.amt.tolist(), self.score.tolist(), vectors, strict=True))


def live_sample(seed: int, n: int, *, shift_vector: bool = False, shift_score: bool = False) -> LiveSample:
    """Generated features whose hour / weekday / night / amount agree with the transaction time and amount.

    ``shift_vector`` changes only ``VECTOR_SHIFTED`` (features the log has only in the vector);
    ``shift_score`` only the score.
    """
    rng = np.random.default_rng(seed + 10_000)  # a stream of its own, not generate()'s
    data = generate(seed, n)
    if shift_vector:
        data["distance_km"] = data["distance_km"] * 1.6
        data["n_24h"] = data["n_24h"] + rng.poisson(1.5, n)
    times = [
        LIVE_START + timedelta(days=int(d), hours=int(h), minutes=7)
        for d, h in zip(rng.integers(0, 28, n), data["hour"], strict=True)
    ]
    data["weekday"] = np.asarray([t.weekday() for t in times], np.float64)
    data["is_night"] = ((data["hour"] >= 22) | (data["hour"] < 4)).astype(np.float64)
    score = rng.beta(1, 10 if shift_score else 30, n)
    vectors = np.column_stack([data[name] for name in FEATURE_NAMES])
    return LiveSample([t.strftime("%Y-%m-%d %H:%M:%S") for t in times], data["amt"], score, vectors)


def numpy_profile(sample: LiveSample, version: str, kinds: dict[str, str], fmt: int, bins: int = 10) -> dict:
    """The reference profile build_live_profile would store, computed with numpy from a sample."""
    from fraud_detection import drift as D

    data = sample.columns()
    edges = D.reference_edges_numpy(data, kinds, bins)
    summaries = D.summarize_numpy(data, kinds, edges)
    return {
        "format": fmt,
        "model_version": version,
        "period": {"start": "2019-07-01 00:00:00", "end": "2019-08-31 23:59:59", "rows": len(sample.score)},
        "summaries": {k: v.to_dict() for k, v in summaries.items()},
    }


def prediction_records(sample: LiveSample, *, prefix: str, with_vectors: bool = True, minutes_ago: int = 0) -> list:
    """PredictionRecords of a sample, logged one second apart from ``minutes_ago`` back (newest first)."""
    from fraud_detection.prediction_log import PredictionRecord

    now = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return [
        PredictionRecord(
            prediction_id=f"{prefix}{i}",
            logged_at=(now - timedelta(seconds=i)).isoformat(timespec="milliseconds"),
            request_id="r",
            trans_num=f"t{i}",
            card_key="ck",
            trans_time=tt,
            amt=amt,
            model_version="v1",
            score=score,
            decision=score > 0.5,
            threshold=0.5,
            latency_ms=1.0,
            features=vector if with_vectors else None,
        )
        for i, (tt, amt, score, vector) in enumerate(sample.rows(with_vectors))
    ]
