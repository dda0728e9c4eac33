"""The figures that code comments used to carry, measured here in one run so the comments can point to
them instead of going stale. Each row is a claim a comment makes ("X is cheaper than Y"), the way the code
does it and the baseline it was chosen over, timed in this process (median of repeated timings).

* the compiled tree walk (``api.fast_model``) against scikit-learn's ``predict_proba`` on one row;
* the row feature engine with plain-Python history (``api.fast_features``) against
  ``features.transaction_features``, on a card with 40 earlier transactions;
* a full garbage collection of the service's heap (libraries and a model loaded), then the same after
  ``gc.freeze`` (``api.model_holder.settle_heap``);
* ``UtcClock.now_iso`` against ``datetime.now(UTC).isoformat(timespec="milliseconds")``;
* ``prediction_log.encode_features`` (base64 float32) against the vector as JSON text;
* the schema's Python validators (card number, time, birth date) per transaction;
* the share of random 32-hex transaction ids holding an 11-digit decimal run (``card_key``).

Bounded: a few seconds, 127.0.0.1 not used. ``--write-docs`` replaces its section of ``docs/benchmarks.md``.

    .venv/bin/python bench/code_figures.py --write-docs
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.docs_section import report  # noqa: E402

HEADING = "## Figures behind the code"


def per_call_us(fn: Callable[[], object], *, calls: int, repeats: int = 7) -> float:
    """Median over ``repeats`` timings of ``calls`` calls, in microseconds per call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(times)


def _model_and_row():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    from fraud_detection.features import FEATURE_NAMES

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, len(FEATURE_NAMES)))
    y = (X[:, 0] + rng.normal(size=len(X)) > 2).astype(int)
    model = Pipeline([("clf", HistGradientBoostingClassifier(max_iter=200, random_state=0))]).fit(X, y)
    return model, X[:1]


def model_rows(rows: list[tuple[str, str, str]]) -> None:
    from api.fast_model import compile_model

    model, row = _model_and_row()
    compiled = compile_model(model)
    sk = per_call_us(lambda: model.predict_proba(row), calls=50)
    fast = per_call_us(lambda: compiled.predict_proba1(row), calls=2000)
    rows.append(("one row scored: numba tree walk vs scikit-learn predict_proba", f"{fast:.1f} us", f"{sk:,.0f} us"))

    from api import main  # noqa: F401 - the service's libraries, as a worker has them loaded
    from api.model_holder import settle_heap

    gc.collect()
    t0 = time.perf_counter()
    gc.collect()
    full = (time.perf_counter() - t0) * 1e3
    settle_heap()
    t0 = time.perf_counter()
    gc.collect()
    frozen = (time.perf_counter() - t0) * 1e3
    gc.unfreeze()
    rows.append(("a full garbage collection: after gc.freeze vs without", f"{frozen * 1e3:.0f} us", f"{full:.1f} ms"))


def feature_rows(rows: list[tuple[str, str, str]]) -> None:
    from api.fast_features import ListHistory
    from api.fast_features import transaction_features as fast_features
    from api.schemas import EXAMPLE, Transaction
    from fraud_detection import features

    txn = Transaction.model_validate(EXAMPLE).__dict__
    ts = features.history_record(txn)[0]
    rng = np.random.default_rng(1)
    recs = [(ts - 3600 * (k + 1) * 7, float(rng.uniform(1, 300)), int(k % 14)) for k in range(40)][::-1]
    fast = per_call_us(lambda: fast_features(txn, ListHistory(recs)), calls=300)
    row = per_call_us(lambda: features.transaction_features(txn, features.History.from_records(recs)), calls=100)
    rows.append(
        ("features of one transaction (40 earlier ones): fast_features vs RowOps", f"{fast:.0f} us", f"{row:.0f} us")
    )


def record_rows(rows: list[tuple[str, str, str]]) -> None:
    from api.scoring import UtcClock
    from fraud_detection.features import FEATURE_NAMES
    from fraud_detection.prediction_log import encode_features

    clock = UtcClock()
    mine = per_call_us(clock.now_iso, calls=20_000)
    std = per_call_us(lambda: datetime.now(UTC).isoformat(timespec="milliseconds"), calls=20_000)
    rows.append(
        ("a log record's time: UtcClock.now_iso vs datetime.now(UTC).isoformat", f"{mine:.2f} us", f"{std:.2f} us")
    )

    vec = list(np.random.default_rng(2).normal(size=len(FEATURE_NAMES)))
    enc = per_call_us(lambda: encode_features(vec), calls=5000)
    js = per_call_us(lambda: json.dumps(vec), calls=5000)
    rows.append(("a feature vector for the log: base64 float32 vs JSON text", f"{enc:.1f} us", f"{js:.1f} us"))


def validation_rows(rows: list[tuple[str, str, str]]) -> None:
    from api import schemas

    card = per_call_us(lambda: schemas._card_number("4616225647185595"), calls=20_000)
    when = per_call_us(lambda: schemas._local_time("2019-01-12 20:29:13"), calls=20_000)
    born = per_call_us(lambda: schemas._birth_date("1986-08-12"), calls=20_000)
    rows.append(
        ("the Python validators of one transaction (card, time, birth date)", f"{card + when + born:.1f} us", "-")
    )


def id_rows(rows: list[tuple[str, str, str]], n: int = 200_000) -> None:
    from fraud_detection.card_key import TRANS_ID_DIGITS

    run = re.compile(f"[0-9]{{{TRANS_ID_DIGITS}}}")
    hits = sum(bool(run.search(secrets.token_hex(16))) for _ in range(n))
    rows.append(
        (
            f"random 32-hex ids holding a {TRANS_ID_DIGITS}-digit run (stored as keyed hashes)",
            f"{hits / n:.2%}",
            f"of {n:,}",
        )
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--write-docs", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    rows: list[tuple[str, str, str]] = []
    started = time.monotonic()
    for step in (model_rows, feature_rows, record_rows, validation_rows, id_rows):
        step(rows)
    load = os.getloadavg()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        HEADING,
        "",
        f"`bench/code_figures.py`, {stamp}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.monotonic() - started:.0f} s; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}. "
        "The figures the code's comments rely on, each against the alternative the code was written to avoid "
        "(median of 7 timings in one process; an idle core gives lower absolute figures, the ratios hold).",
        "",
        "| claim | the code's way | the alternative |",
        "| --- | ---: | ---: |",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
    ]
    report(HEADING, "\n".join(lines) + "\n", write_docs=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
