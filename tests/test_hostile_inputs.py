"""One small training run on local Spark over what a careless or hostile sender leaves in ``raw/``:

* files named with spaces, unicode, ``%``, ``#``, ``?``, ``[``, ``*``, ``{``: read as written (the run
  used to fail with PATH_NOT_FOUND on ``Path.as_uri()``'s percent-encoding);
* files Spark or Python cannot read (a ``:`` Hadoop refuses in a name, a FIFO): quarantined with their
  reason, the run goes on with the rest;
* a file carrying card numbers in every column and shape: quarantined; no card number in the Data Docs,
  the reason file, the run record, the model's reports, the MLflow store or the log lines (counts only).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from datetime import date

import pytest
from log_capture import json_log_lines

from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore
from spark_jobs.pipeline import TrainRequest, run_training

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# one file: each file costs a great-expectations run once the union fails (the carded file makes it fail)
GOOD = ["données été ✓ a b%20c #1 q?x s*t[u br]ace{x}.csv"]
CARDS = ["4000323412349873", "5555555555554444", "378282246310005"]  # Visa / Mastercard / Amex test numbers
SHAPES = [  # how a card number may be written in a field
    lambda c: c,
    lambda c: " ".join(c[i : i + 4] for i in range(0, len(c), 4)),
    lambda c: "-".join(c[i : i + 4] for i in range(0, len(c), 4)),
    lambda c: f"{c}x",
    lambda c: f"{c}abcdefabcdefabcd"[:32],  # hidden in a 32-character hex id
    lambda c: f"{c}.0",
]


def hidden_id(card: str, i: int) -> str:
    """A valid 32-hex transaction id that starts with a card number (0-9 are hex digits)."""
    return (f"{card}{i:04x}" + "abcdef" * 6)[:32]


def card_forms() -> list[bytes]:
    """Every byte string that counts as the card number leaking: plain digits, and each written shape."""
    return sorted({s(c).encode() for c in CARDS for s in SHAPES[:3]} | {c.encode() for c in CARDS})


def carded_file(header: list[str], template: list[str]) -> str:
    """Rows whose every column (cc_num, trans_num, names, street, merchant, category, amounts, dates...)
    holds a card number in one of its shapes."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    for i in range(24):
        card = CARDS[i % len(CARDS)]
        row = [SHAPES[(i + j) % len(SHAPES)](card) for j in range(len(header))]
        row[0] = str(i)  # the index column
        if i % 2:  # half the rows otherwise valid: only the personal columns carry the card numbers
            row = list(template)
            row[0] = str(i)
            for col in ("cc_num", "first", "last", "street", "city", "job", "merchant", "trans_num", "zip"):
                row[header.index(col)] = SHAPES[i % len(SHAPES)](card)
        w.writerow(row)
    return out.getvalue()


@pytest.fixture(scope="module")
def hostile_run(spark, tmp_path_factory):
    from tools.generator import generate_csv

    store_dir = tmp_path_factory.mktemp("hostile_store")
    src = tmp_path_factory.mktemp("hostile_src") / "all.csv"
    generate_csv(src, rows=6_000, cards=60, start=date(2019, 1, 1), end=date(2019, 8, 31), seed=3, fraud_rate=0.03)
    lines = src.read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    raw = store_dir / "raw"
    raw.mkdir()
    cols = next(csv.reader([header]))
    t = cols.index("trans_num")
    rows = list(csv.reader(body))
    for i, row in enumerate(rows[:30]):  # valid 32-hex ids hiding a card number: stored as keyed hashes
        row[t] = hidden_id(CARDS[i % 3], i)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    body = text.getvalue().splitlines(keepends=True)
    n = len(GOOD)
    for i, name in enumerate(GOOD):  # the history split over the oddly named files
        (raw / name).write_text(header + "".join(body[i::n]))
    (raw / "co:lon.csv").write_text(header + "".join(body[:50]))  # Hadoop cannot read ':' in a name
    os.mkfifo(raw / "pipe.csv")  # opening it to read would block
    (raw / "cards.csv").write_text(carded_file(cols, next(csv.reader([body[0]]))))

    settings = Settings(
        store_uri=str(store_dir), catalog_database="fraud_hostile", max_training_rows=6_000, spark_master="local[2]"
    )
    with json_log_lines(logging.INFO) as stream:
        result = run_training(spark, settings, LocalStore(store_dir), TrainRequest(inputs=[str(raw)]))
    return store_dir, result, stream.getvalue()


def test_odd_names_are_read_as_written_and_unreadable_files_are_quarantined(hostile_run):
    store_dir, result, _ = hostile_run
    rec = result.record
    print("stage timings (s):", rec.timings_s)
    assert rec.status in ("succeeded", "rejected"), rec.error  # the run went on (promotion is not the point)
    assert sorted(rec.accepted_files) == sorted(GOOD)
    assert "skipped" not in rec.extra["tracking"], rec.extra["tracking"]  # the MLflow store is scanned below
    store = LocalStore(store_dir)
    reasons = {k: json.loads(store.read_bytes(k + ".reason.json")) for k in rec.quarantined_files}
    by_file = {r["file"]: r for r in reasons.values()}
    assert set(by_file) == {"co:lon.csv", "pipe.csv", "cards.csv"}
    assert "Spark could not read it" in by_file["co:lon.csv"]["error"]
    assert "not a regular file" in by_file["pipe.csv"]["error"]
    assert by_file["cards.csv"]["failed_expectations"], by_file["cards.csv"]


def test_reports_keep_counts_never_the_values_of_personal_columns(hostile_run):
    store_dir, result, logs = hostile_run
    store = LocalStore(store_dir)
    cards_reason = next(
        json.loads(store.read_bytes(k + ".reason.json")) for k in result.record.quarantined_files if "cards" in k
    )
    failed = {(f["column"], f["expectation"]): f for f in cards_reason["failed_expectations"]}
    cc = failed[("cc_num", "expect_column_values_to_match_regex")]
    assert cc["unexpected_count"] > 0 and cc["partial_unexpected_list"] == ["<redacted: personal column>"]

    # every byte the store holds outside the data itself (raw/, the quarantined copies, the tables)
    data = ("raw/", "curated/", "warehouse/", "state/spark")  # features/ is scanned: ids are hashed there
    scanned, hits = 0, []
    for path in store_dir.rglob("*"):
        rel = path.relative_to(store_dir).as_posix()
        if not path.is_file() or path.is_symlink() or rel.startswith(data):
            continue
        if rel.startswith("quarantine/") and not rel.endswith(".reason.json"):
            continue
        blob = path.read_bytes()
        scanned += 1
        hits += [(rel, form) for form in card_forms() if form in blob]
    hits += [("logs", form) for form in card_forms() if form in logs.encode()]
    assert not hits, hits
    docs = [p for p in store_dir.rglob("*.html") if "reports/validation" in p.as_posix()]
    assert len(docs) >= 2 and scanned > 10
    assert any(b"unexpected" in p.read_bytes().lower() for p in docs)  # the counts are there
    assert (store_dir / "state").exists() and any((store_dir / "state").rglob("mlflow.db"))


def test_training_stores_hidden_card_ids_as_the_api_does(hostile_run, spark):
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from fraud_detection.card_key import resolve_key, spark_stored_trans_id, stored_trans_id

    store_dir, _, _ = hostile_run
    store = LocalStore(store_dir)
    key = resolve_key(Settings(store_uri=str(store_dir)), store)
    ids = [hidden_id(c, i) for i, c in enumerate(CARDS)] + ["807f9ec4fb90ac06c054694a2f666f97"]
    df = spark.createDataFrame([(i,) for i in ids], "t string")
    got = [r[0] for r in df.select(spark_stored_trans_id(F.col("t"), key)).collect()]
    assert got == [stored_trans_id(i, key) for i in ids] and got[-1] == ids[-1] and got[0] != ids[0]
    snapshot = pq.read_table(store_dir / "features" / "card_history_snapshot").column("trans_num").to_pylist()
    features = pq.read_table(store_dir / "features" / "features", columns=["trans_num"]).column("trans_num").to_pylist()
    for stored in (snapshot, features):
        assert not [t for t in stored if any(c in t for c in CARDS)]
    assert sum(t.startswith("h") for t in features) >= 30
