"""The typical way this is done today: Flask + gunicorn, a pandas DataFrame built per request around a
100-tree random forest, features from the request alone (no card history).

    BASELINE_MODEL=bench/out/baseline_rf.joblib gunicorn -w 2 -b 127.0.0.1:PORT bench.api_baseline_flask:app
"""

from __future__ import annotations

import os

import joblib
import numpy as np
import pandas as pd
from flask import Flask, jsonify, request

from fraud_detection.contract import CATEGORIES

BASELINE_FEATURES = ["amt", "city_pop", "lat", "long", "merch_lat", "merch_long", "hour", "age", "gender_m"] + [
    f"cat_{c}" for c in CATEGORIES
]


def frame_features(df: pd.DataFrame) -> pd.DataFrame:
    ts = pd.to_datetime(df["trans_date_trans_time"])
    dob = pd.to_datetime(df["dob"])
    out = df[["amt", "city_pop", "lat", "long", "merch_lat", "merch_long"]].astype(float)
    out["hour"] = ts.dt.hour
    out["age"] = (ts - dob).dt.days / 365.25
    out["gender_m"] = (df["gender"] == "M").astype(int)
    for c in CATEGORIES:
        out[f"cat_{c}"] = (df["category"] == c).astype(int)
    return out[BASELINE_FEATURES]


app = Flask(__name__)
_model = None


def model():
    global _model
    if _model is None:  # loaded per worker on first use (the import must work before the model exists)
        _model = joblib.load(os.environ.get("BASELINE_MODEL", "bench/out/baseline_rf.joblib"))
    return _model


@app.post("/v1/score")
def score():
    df = pd.DataFrame([request.get_json()])
    p = float(model().predict_proba(frame_features(df).to_numpy(dtype=np.float64))[:, 1][0])
    return jsonify({"fraud_probability": p, "is_fraud": p >= 0.5})


@app.get("/health")
def health():
    return jsonify({"status": "ok"})
