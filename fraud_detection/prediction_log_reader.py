"""Read the prediction log back (SQLite file or DynamoDB table): what the live drift check compares.

The writer is ``fraud_detection/prediction_log.py``; this module reads what it wrote, in the order
and shape the drift statistics want (one array per column).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from fraud_detection.features import FEATURE_NAMES

# Columns every logged prediction has (the score, the amount, and what the transaction time gives).
LOG_COLUMNS = ("score", "amt", "hour", "weekday", "is_night")
MAX_SCAN_PAGES = 10_000  # DynamoDB scan pages (each up to 1 MB) read at most


class LoggedPrediction(NamedTuple):
    """What live drift reads of one logged prediction."""

    trans_time: str
    amt: float | None
    score: float
    features: list[float] | None = None  # FEATURE_NAMES order; None for rows logged without a vector
    logged_at: str = ""


def read_prediction_log(
    settings, store, since: datetime, max_rows: int, *, page_size: int | None = None
) -> list[LoggedPrediction]:
    """Predictions logged since ``since``, newest first, at most ``max_rows``.

    SQLite: the newest ``max_rows``. DynamoDB: a scan filtered on ``logged_at``, page by page
    (``page_size`` items per page, default DynamoDB's 1 MB), stopping once ``max_rows`` are read; the
    scan runs in the hash order of the random prediction ids, so the bound keeps a uniform sample of
    the window rather than its newest rows.
    """
    cutoff = since.isoformat(timespec="milliseconds")
    if settings.kv_backend == "dynamodb":
        return _read_dynamodb(settings, cutoff, max_rows, page_size)
    return _read_sqlite(settings, store, cutoff, max_rows)


def _read_sqlite(settings, store, cutoff: str, max_rows: int) -> list[LoggedPrediction]:
    from fraud_detection.card_history import state_dir
    from fraud_detection.prediction_log import decode_features, has_features_column

    path = state_dir(settings, store) / "prediction_log.sqlite"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        vector = "features" if has_features_column(conn) else "NULL"  # a log no API has migrated yet
        rows = conn.execute(
            f"SELECT trans_time, amt, score, {vector}, logged_at FROM prediction_log"  # noqa: S608
            " WHERE logged_at >= ? ORDER BY logged_at DESC LIMIT ?",
            (cutoff, max_rows),
        ).fetchall()
    finally:
        conn.close()
    return [LoggedPrediction(t, a, s, decode_features(f), at) for t, a, s, f, at in rows]


_SCAN_NAMES = {"#t": "trans_time", "#a": "amt", "#s": "score", "#f": "features", "#l": "logged_at"}


def _scan_request(table: str, cutoff: str, page_size: int | None) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "#l >= :c",
        "ExpressionAttributeNames": _SCAN_NAMES,
        "ExpressionAttributeValues": {":c": {"S": cutoff}},
        "ProjectionExpression": ", ".join(_SCAN_NAMES),
    }
    if page_size:
        request["Limit"] = page_size
    return request


def _from_item(item: dict[str, Any]) -> LoggedPrediction | None:
    from fraud_detection.prediction_log import decode_features

    if "trans_time" not in item or "score" not in item:
        return None
    return LoggedPrediction(
        trans_time=item["trans_time"]["S"],
        amt=float(item["amt"]["N"]) if "amt" in item else None,
        score=float(item["score"]["N"]),
        features=decode_features(item.get("features", {}).get("S")),
        logged_at=item.get("logged_at", {}).get("S", ""),
    )


def _read_dynamodb(settings, cutoff: str, max_rows: int, page_size: int | None) -> list[LoggedPrediction]:
    import boto3

    client = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
    request = _scan_request(settings.prediction_log_table, cutoff, page_size)
    out: list[LoggedPrediction] = []
    for _ in range(MAX_SCAN_PAGES):
        page = client.scan(**request)
        out.extend(r for r in map(_from_item, page.get("Items", [])) if r is not None)
        if len(out) >= max_rows or "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    out.sort(key=lambda r: r.logged_at, reverse=True)
    return out[:max_rows]


def live_arrays(rows: Sequence[Sequence[Any]]) -> dict[str, np.ndarray]:
    """Logged rows ``(trans_time, amt, score[, features])`` -> one array per live column.

    ``LOG_COLUMNS`` come from every row (hour / weekday / night as the features define them); every
    other feature only from the rows that carry a vector of the current ``FEATURE_NAMES`` length.
    """
    from fraud_detection.features import NIGHT_END_HOUR, NIGHT_START_HOUR, parse_timestamp

    hour, weekday, amt, score, vectors = [], [], [], [], []
    for row in rows:
        try:
            t = parse_timestamp(row[0])
        except (TypeError, ValueError):
            continue
        hour.append(t.hour)
        weekday.append(t.weekday())
        amt.append(np.nan if row[1] is None else float(row[1]))
        score.append(float(row[2]))
        vector = row[3] if len(row) > 3 else None
        if vector is not None and len(vector) == len(FEATURE_NAMES):
            vectors.append(vector)
    h = np.asarray(hour, np.float64)
    out = {
        "score": np.asarray(score, np.float64),
        "amt": np.asarray(amt, np.float64),
        "hour": h,
        "weekday": np.asarray(weekday, np.float64),
        "is_night": ((h >= NIGHT_START_HOUR) | (h < NIGHT_END_HOUR)).astype(np.float64),
    }
    matrix = np.asarray(vectors, np.float64).reshape(len(vectors), len(FEATURE_NAMES))
    for i, name in enumerate(FEATURE_NAMES):
        out.setdefault(name, matrix[:, i])
    return out


def rows_with_features(data: dict[str, np.ndarray]) -> int:
    """How many rows of ``live_arrays`` output carried a feature vector."""
    vector_only = [n for n in FEATURE_NAMES if n not in LOG_COLUMNS]
    return int(data[vector_only[0]].size) if vector_only else 0


