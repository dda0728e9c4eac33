"""Generated feature data for the drift tests: every feature of FEATURE_KINDS, independent columns.

``generate(seed, n)`` draws from one fixed distribution; ``shift=True`` changes exactly the features in
``SHIFTED`` (one of each kind) and nothing else.
"""

from __future__ import annotations

import numpy as np

from fraud_detection.features import FEATURE_KINDS

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
