"""Live drift on the AWS prediction log: the API's writer puts predictions into DynamoDB (the local emulator,
moto in server mode on 127.0.0.1, real HTTP from boto3), the live-drift reader scans them back within the
time window, page by page and bounded by max_rows; the check runs end to end on them, and so does the
scheduled job's entry script, whose DriftFound lands in CloudWatch under the drift alarm's dimension."""

from __future__ import annotations

import importlib.util
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aws_calls
import pytest

from fraud_detection import artifacts, monitoring
from fraud_detection import prediction_log_reader as reader
from fraud_detection.features import FEATURE_NAMES
from fraud_detection.prediction_log import create_dynamo_table, encode_features, prediction_log_from_settings
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore
from spark_jobs import drift_checks as cmd
from tests.tracking.conftest import make_candidate
from tests.tracking.drift_data import VECTOR_SHIFTED, live_sample, numpy_profile, prediction_records

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.aws_component("live_drift_job")  # its AWS calls are checked against that job's role


@dataclass
class DynamoLog:
    settings: Settings
    store: LocalStore
    client: object  # boto3 DynamoDB client on the emulator

    def write(self, records: list) -> None:
        """What the API does: queue + background writer + DynamoSink (batch_write_item over HTTP)."""
        with aws_calls.component("api"):  # these writes are the API's: checked against the API's role
            plog = prediction_log_from_settings(self.settings, self.store)
            plog.append_many(records)
            plog.close()
        assert plog.written == len(records)


@pytest.fixture
def dynamo_log(aws_emulator, fake_aws_credentials, tmp_path) -> DynamoLog:
    import boto3

    table = f"fraud-test-prediction-log-{uuid.uuid4().hex[:8]}"  # a fresh table per test: no reset needed
    client = boto3.client("dynamodb", endpoint_url=aws_emulator, region_name=REGION)
    create_dynamo_table(client, table)
    settings = Settings(
        store_uri=str(tmp_path),
        kv_backend="dynamodb",
        aws_endpoint_url=aws_emulator,
        aws_region=REGION,
        prediction_log_table=table,
    )
    return DynamoLog(settings, LocalStore(tmp_path), client)


def _with_champion(store: LocalStore) -> str:
    """Publish a champion and cache its reference profile (score and every feature); returns its version."""
    make_candidate(store)
    version = artifacts.read_latest(store).version
    profile = numpy_profile(live_sample(1, 3000), version, cmd.LIVE_KINDS, cmd.PROFILE_FORMAT)
    store.write_bytes(cmd.profile_key(version), json.dumps(profile).encode())
    return version


def test_scan_reads_the_window_page_by_page_up_to_max_rows(dynamo_log):
    recent = prediction_records(live_sample(2, 260), prefix="new")
    plain = prediction_records(live_sample(3, 40), prefix="plain", with_vectors=False, minutes_ago=30)
    old = prediction_records(live_sample(4, 50), prefix="old", minutes_ago=3 * 24 * 60)
    dynamo_log.write(recent + plain + old)
    settings, store = dynamo_log.settings, dynamo_log.store

    first = dynamo_log.client.scan(TableName=settings.prediction_log_table, Limit=40)
    assert len(first["Items"]) == 40 and "LastEvaluatedKey" in first  # a page holds 40 of the 350 items

    since = datetime.now(UTC) - timedelta(hours=24)
    rows = reader.read_prediction_log(settings, store, since, 10_000, page_size=40)
    assert len(rows) == 300  # all of the window: only possible by following LastEvaluatedKey past page one
    stamps = [r.logged_at for r in rows]
    assert stamps == sorted(stamps, reverse=True) and min(stamps) >= since.isoformat(timespec="milliseconds")
    by_stamp = {r.logged_at: r for r in rows}
    for rec in recent + plain:
        got = by_stamp[rec.logged_at]
        assert (got.trans_time, got.amt, got.score) == (rec.trans_time, rec.amt, rec.score)
        if rec.features is None:
            assert got.features is None
        else:
            assert got.features == pytest.approx(rec.features, rel=1e-6) and len(got.features) == len(FEATURE_NAMES)

    bounded = reader.read_prediction_log(settings, store, since, 100, page_size=40)
    assert len(bounded) == 100 and {r.logged_at for r in bounded} <= set(by_stamp)
    assert len(reader.read_prediction_log(settings, store, since, 10_000)) == 300  # default pages (1 MB)
    assert reader.read_prediction_log(settings, store, datetime.now(UTC) + timedelta(minutes=1), 10_000) == []


def test_a_logged_item_with_its_vector_stays_under_one_write_unit(dynamo_log):
    rec = prediction_records(live_sample(5, 1), prefix="x")[0]._replace(
        prediction_id=uuid.uuid4().hex,
        request_id=uuid.uuid4().hex,
        trans_num=uuid.uuid4().hex,
        card_key="f" * 64,  # the keyed hash: 64 hex characters, never the card number
        model_version="20261121T120501123Z-3fa2c1d0",
    )
    dynamo_log.write([rec])
    key = {"prediction_id": {"S": rec.prediction_id}}
    item = dynamo_log.client.get_item(TableName=dynamo_log.settings.prediction_log_table, Key=key)["Item"]
    assert item["features"] == {"S": encode_features(rec.features)}
    size = sum(len(name) + len(str(next(iter(value.values())))) for name, value in item.items())
    assert size < 1024, size  # attribute names + values: one 1 KB write unit per prediction


def test_live_drift_end_to_end_on_the_dynamodb_log(dynamo_log):
    settings, store = dynamo_log.settings, dynamo_log.store
    version = _with_champion(store)
    dynamo_log.write(prediction_records(live_sample(6, 1200, shift_vector=True), prefix="s"))
    dynamo_log.write(prediction_records(live_sample(7, 300), prefix="plain", with_vectors=False, minutes_ago=60))

    def no_spark():
        raise AssertionError("the cached profile needs no Spark")

    summary = cmd.run_live_check(settings, store, hours=24, spark_session=no_spark, plots=False)
    assert summary["drift_found"] and set(summary["features"]) == set(VECTOR_SHIFTED)
    assert summary["current_rows"] == 1500 and summary["rows_with_features"] == 1200
    doc = json.loads(store.read_bytes(summary["report"]))
    assert doc["kind"] == "live" and doc["champion_version"] == version
    assert doc["current"] == {"what": "prediction log, last 24 h", "rows": 1500, "rows_with_features": 1200}


def _live_drift_job():
    spec = importlib.util.spec_from_file_location("live_drift_job", ROOT / "glue" / "live_drift_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scheduled_job_entry_publishes_drift_found_for_the_alarm(dynamo_log, aws_emulator, monkeypatch, capsys):
    import boto3

    settings, store = dynamo_log.settings, dynamo_log.store
    _with_champion(store)
    dynamo_log.write(prediction_records(live_sample(8, 1000, shift_vector=True), prefix="j"))
    monkeypatch.setenv("FRAUD_AWS_ENDPOINT_URL", aws_emulator)
    model_name = f"fraud-test-{uuid.uuid4().hex[:6]}"
    argv = ["live_drift_job.py", "--store_uri", str(store.root), "--kv_backend", "dynamodb",
            "--prediction_log_table", settings.prediction_log_table, "--hours", "24", "--model_name", model_name,
            "--aws_region", REGION, "--metrics_backend", "cloudwatch"]  # fmt: skip
    started = datetime.now(UTC)
    assert _live_drift_job().main(argv) == 0  # drift found is the alarm's business, not a job failure
    out = capsys.readouterr().out
    assert "live drift: DRIFT FOUND in" in out and "DriftFound to cloudwatch:FraudDetection" in out
    assert any(o.key.startswith("reports/drift/live-") for o in store.list("reports/drift/"))

    cw = boto3.client("cloudwatch", endpoint_url=aws_emulator, region_name=REGION)
    stats = cw.get_metric_statistics(
        Namespace=monitoring.NAMESPACE,
        MetricName="DriftFound",
        Dimensions=[{"Name": monitoring.DIMENSION, "Value": model_name}],  # what DataDriftAlarm selects
        StartTime=started - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )
    assert [p["Maximum"] for p in stats["Datapoints"]] == [1.0]


def test_scheduled_job_entry_on_an_s3_store(dynamo_log, aws_emulator, monkeypatch, capsys, tmp_path):
    """The job as deployed: champion, cached profile and report in S3, so its S3 calls go through the IAM
    call check (tests/aws_calls.py) against the live-drift job's role."""
    import boto3

    settings, local = dynamo_log.settings, dynamo_log.store
    _with_champion(local)
    s3 = boto3.client("s3", endpoint_url=aws_emulator, region_name=REGION)
    bucket = f"live-drift-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for path in sorted(p for p in local.root.rglob("*") if p.is_file()):  # what training published
        s3.put_object(Bucket=bucket, Key=path.relative_to(local.root).as_posix(), Body=path.read_bytes())
    dynamo_log.write(prediction_records(live_sample(9, 1000, shift_vector=True), prefix="s3"))
    monkeypatch.setenv("FRAUD_AWS_ENDPOINT_URL", aws_emulator)
    argv = ["live_drift_job.py", "--store_uri", f"s3://{bucket}", "--kv_backend", "dynamodb",
            "--prediction_log_table", settings.prediction_log_table, "--hours", "24",
            "--model_name", "fraud-test-s3", "--aws_region", REGION, "--metrics_backend", "cloudwatch"]  # fmt: skip
    assert _live_drift_job().main(argv) == 0
    assert "live drift: DRIFT FOUND in" in capsys.readouterr().out
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="reports/drift/live-")["Contents"]]
    assert any(k.endswith("report.json") for k in keys), keys
