"""Live drift from a SQLite prediction log (no Spark): the logged feature vector is stored and read back,
an older log without the column is migrated and still read, every feature is compared (a shift only the
vector shows is found and named), rows without a vector still count for the score / amount / time
columns, and a cached reference profile of the older format is rebuilt rather than misread."""

from __future__ import annotations

import json
import math
import sqlite3
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from fraud_detection import artifacts, monitoring
from fraud_detection import prediction_log_reader as reader
from fraud_detection.features import FEATURE_KINDS, FEATURE_NAMES
from fraud_detection.prediction_log import PredictionRecord, SqliteSink, decode_features, encode_features
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore
from spark_jobs import drift_checks as cmd
from tests.tracking.conftest import make_candidate
from tests.tracking.drift_data import VECTOR_SHIFTED, live_sample, numpy_profile, prediction_records

OLD_DDL = (  # the prediction log as written before feature vectors were logged
    "CREATE TABLE prediction_log ("
    " prediction_id TEXT PRIMARY KEY, logged_at TEXT NOT NULL, request_id TEXT, trans_num TEXT,"
    " card_key TEXT NOT NULL, trans_time TEXT, amt REAL, model_version TEXT NOT NULL, score REAL NOT NULL,"
    " decision INTEGER NOT NULL, threshold REAL NOT NULL, latency_ms REAL NOT NULL)"
)


@pytest.fixture
def champion(tmp_path) -> tuple[LocalStore, Settings, dict]:
    """A store with a champion and its cached reference profile (score and every feature)."""
    store = LocalStore(tmp_path)
    make_candidate(store)
    version = artifacts.read_latest(store).version
    profile = numpy_profile(live_sample(1, 3000), version, cmd.LIVE_KINDS, cmd.PROFILE_FORMAT)
    store.write_bytes(cmd.profile_key(version), json.dumps(profile).encode())
    return store, Settings(store_uri=str(tmp_path)), profile


def _log_path(store: LocalStore):
    return store.path("state") / "prediction_log.sqlite"


def test_features_encode_compactly_and_round_trip():
    values = [12.345678901, 3.0, -1.0, 0.000123456789, 1e12, float("nan"), float("inf")]
    text = encode_features(values)
    back = decode_features(text)
    assert back[:5] == pytest.approx([12.345678901, 3.0, -1.0, 0.000123456789, 1e12], rel=1e-7)  # float32
    assert math.isnan(back[5]) and math.isnan(back[6])
    assert encode_features(None) is None and decode_features(None) is None and decode_features("{oops") is None
    assert decode_features(encode_features(np.array([1.5, 2.0]))) == [1.5, 2.0]  # a numpy row (batch path)
    vector = live_sample(5, 1).rows()[0][3]
    assert len(encode_features(vector)) < 400  # the whole vector: well inside one DynamoDB write unit


def test_record_without_features_keeps_the_old_positional_form():
    rec = PredictionRecord("id", "t", "r", "n", "k", "ts", 1.0, "v", 0.1, False, 0.5, 1.0)
    assert rec.features is None and rec._replace(features=[1.0]).features == [1.0]


def test_old_log_is_read_then_migrated_and_old_rows_stay_without_vectors(champion):
    store, settings, _ = champion
    path = _log_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = prediction_records(live_sample(2, 40), prefix="old", minutes_ago=60)
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_DDL)
        conn.executemany(
            "INSERT INTO prediction_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [r[:12] for r in old]
        )
    conn.close()
    since = datetime.now(UTC) - timedelta(hours=2)
    before = reader.read_prediction_log(settings, store, since, 1000)  # no API has migrated the file yet
    assert len(before) == 40 and all(r.features is None for r in before)

    sink = SqliteSink(path)  # what an API worker does on start: adds the column, keeps the rows
    sink.write(prediction_records(live_sample(3, 30), prefix="new"))
    SqliteSink(path).close()  # a second worker: the column exists already, nothing to do
    sink.close()
    rows = reader.read_prediction_log(settings, store, since, 1000)
    assert len(rows) == 70
    assert [r.features is not None for r in rows] == [True] * 30 + [False] * 40  # newest first
    assert len(rows[0].features) == len(FEATURE_NAMES)
    assert rows[0].features == pytest.approx(live_sample(3, 30).vectors[0].tolist(), rel=1e-6)


def test_live_drift_compares_every_feature_and_names_a_shift_only_the_vector_shows(champion):
    store, settings, profile = champion
    sink = SqliteSink(_log_path(store))
    sink.write(prediction_records(live_sample(2, 1500), prefix="calm"))
    sink.close()
    rows = reader.read_prediction_log(settings, store, datetime.now(UTC) - timedelta(hours=48), 10_000)
    calm = cmd.live_drift(settings, store, profile, rows, hours=48, plots=False)
    assert not calm["drift_found"], calm
    assert calm["current_rows"] == 1500 and calm["rows_with_features"] == 1500
    doc = json.loads(store.read_bytes(calm["report"]))
    assert {f["name"] for f in doc["features"]} == set(FEATURE_KINDS) | {"score"}
    assert doc["features_tested"] == len(FEATURE_KINDS) + 1
    tests = {f["name"]: f["test"] for f in doc["features"]}
    assert tests["distance_km"] == "welch_t" and tests["n_24h"] == "mann_whitney_u"
    assert tests["category_idx"] == "chi_square" and tests["is_online"] == "two_proportion_z"

    shifted = cmd.live_drift(settings, store, profile, live_sample(4, 1500, shift_vector=True).rows(), hours=48)
    assert store.exists(shifted["report"].replace("report.json", "plots/distance_km.png"))
    assert shifted["drift_found"] and set(shifted["features"]) == set(VECTOR_SHIFTED)


def test_rows_without_a_vector_count_for_score_and_time_columns_only(champion):
    store, settings, profile = champion
    old = live_sample(6, 1200, shift_score=True).rows(with_vectors=False)
    new = live_sample(7, 300).rows()
    summary = cmd.live_drift(settings, store, profile, old + new, hours=24, plots=False)
    assert summary["current_rows"] == 1500 and summary["rows_with_features"] == 300
    assert "score" in summary["features"]
    doc = json.loads(store.read_bytes(summary["report"]))
    n_current = {f["name"]: f["n_current"] for f in doc["features"]}
    assert {n_current[c] for c in reader.LOG_COLUMNS} == {1500}
    assert n_current["distance_km"] == 300 and n_current["category_idx"] == 300

    only_old = cmd.live_drift(settings, store, profile, old, hours=24, plots=False)  # a log from before vectors
    doc = json.loads(store.read_bytes(only_old["report"]))
    assert {f["name"] for f in doc["features"]} == set(reader.LOG_COLUMNS)
    assert only_old["rows_with_features"] == 0


def test_cached_profile_of_the_older_format_is_rebuilt(champion, monkeypatch):
    store, settings, profile = champion
    version = profile["model_version"]
    old_format = numpy_profile(live_sample(1, 500), version, {c: FEATURE_KINDS.get(c, "continuous")
                                                               for c in reader.LOG_COLUMNS}, fmt=1)  # fmt: skip
    del old_format["format"]  # format 1 profiles carried no format field
    store.write_bytes(cmd.profile_key(version), json.dumps(old_format).encode())
    assert cmd.cached_profile(store, version) is None

    built = []

    def fake_build(spark, settings_, store_, manifest, model):
        built.append(manifest.version)
        return profile

    monkeypatch.setattr(cmd, "build_live_profile", fake_build)
    sink = SqliteSink(_log_path(store))
    sink.write(prediction_records(live_sample(2, 200), prefix="p"))
    sink.close()
    summary = cmd.run_live_check(settings, store, hours=1, spark_session=lambda: nullcontext(None), plots=False)
    assert built == [version]
    assert json.loads(store.read_bytes(cmd.profile_key(version)))["format"] == cmd.PROFILE_FORMAT
    assert summary is not None and summary["rows_with_features"] == 200

    cmd.run_live_check(settings, store, hours=1, spark_session=lambda: nullcontext(None), plots=False)
    assert built == [version]  # cached now: not built again


def test_live_check_says_when_there_is_nothing_to_compare(tmp_path, capsys):
    store = LocalStore(tmp_path)
    settings = Settings(store_uri=str(tmp_path))
    never = lambda: pytest.fail("no Spark session is needed")  # noqa: E731
    assert cmd.run_live_check(settings, store, hours=1, spark_session=never) is None
    assert "no champion" in capsys.readouterr().err
    make_candidate(store)
    assert cmd.run_live_check(settings, store, hours=1, spark_session=never) is None
    assert "0 prediction(s) logged in the last 1 h" in capsys.readouterr().err


def test_live_drift_found_is_published_for_the_drift_alarm(champion):
    store, settings, profile = champion

    class FakeCloudWatch:
        def __init__(self) -> None:
            self.calls: list[dict] = []

        def put_metric_data(self, **kwargs) -> None:
            self.calls.append(kwargs)

    rows = live_sample(4, 1500, shift_vector=True).rows()
    summary = cmd.live_drift(settings, store, profile, rows, hours=24, plots=False)
    cw = FakeCloudWatch()
    aws = settings.model_copy(update={"metrics_backend": "cloudwatch", "registered_model_name": "fraud-x"})
    out = monitoring.publish_live_drift(aws, store, summary, cloudwatch=cw)
    assert out["drift_found"] is True and out["destination"] == "cloudwatch:FraudDetection"
    (call,) = cw.calls
    assert call["Namespace"] == monitoring.NAMESPACE == "FraudDetection"
    (datum,) = call["MetricData"]
    assert datum["MetricName"] == "DriftFound" and datum["Value"] == 1.0
    assert datum["Dimensions"] == [{"Name": "ModelName", "Value": "fraud-x"}]  # the alarm's only dimension

    local = monitoring.publish_live_drift(settings, store, summary)
    text = store.read_bytes(monitoring.LIVE_PROM_KEY).decode()
    assert 'fraud_live_drift_found{model_name="fraud-detection"} 1' in text
    assert local["destination"] == store.uri(monitoring.LIVE_PROM_KEY)
