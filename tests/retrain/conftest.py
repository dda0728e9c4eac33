"""Fixtures of the retraining suites: a moto server on 127.0.0.1 (real boto3 calls), AWS-mode settings,
local-mode settings with a fake training command, and small CSV files."""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fraud_detection.settings import Settings

HERE = Path(__file__).resolve().parent
BUCKET = "fraud-test-bucket"
TABLE = "fraud-test-idempotency"
JOB = "fraud-train-test"

HEADER = (
    ",trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,street,city,state,zip,lat,long,"
    "city_pop,job,dob,trans_num,unix_time,merch_lat,merch_long,is_fraud"
)
ROW = (
    '0,2019-01-12 20:29:13,4616225647185595,"fraud_Heathcote, Yost and Kertzmann",shopping_net,2.65,Cynthia,'
    "Sanchez,F,379 Miller Circle Apt. 002,Prairie Creek,IN,47869,39.4336,-87.4101,137,Television camera operator,"
    "1986-08-12,807f9ec4fb90ac06c054694a2f666f97,1547324953,40.201325,-86.884803,0"
)


def good_csv(rows: int = 3) -> bytes:
    return ("\n".join([HEADER] + [ROW.replace("0,", f"{i},", 1) for i in range(rows)]) + "\n").encode()


BAD_FILES = {
    "wrong-columns.csv": b"when,card,amount\nyesterday,1234,lots\n",
    "empty.csv": b"",
    "header-only.csv": (HEADER + "\n").encode(),
    "notes.txt": good_csv(),
    "binary.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
}


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _moto_api(url: str, path: str, body: bytes | None = None) -> None:
    req = urllib.request.Request(f"{url}{path}", data=body, method="POST")  # noqa: S310 - local emulator
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310


def glue_runs_stay_running(url: str) -> None:
    """moto: job runs stay STARTING until told otherwise (the job is 'busy')."""
    body = b'{"model_name": "glue::job_run", "transition": {"progression": "manual", "times": 1000000}}'
    _moto_api(url, "/moto-api/state-manager/set-transition", body)


def glue_runs_finish(url: str) -> None:
    """moto: every job run is SUCCEEDED when next looked at."""
    body = b'{"model_name": "glue::job_run", "transition": {"progression": "immediate"}}'
    _moto_api(url, "/moto-api/state-manager/set-transition", body)


@dataclass
class Aws:
    url: str
    settings: Settings
    s3: object
    glue: object
    dynamodb: object

    def put(self, key: str, body: bytes) -> dict:
        return self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)

    def keys(self, prefix: str) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]

    def job_runs(self) -> list[dict]:
        return self.glue.get_job_runs(JobName=JOB)["JobRuns"]


@pytest.fixture
def aws(moto_url) -> Iterator[Aws]:
    """A fresh emulated account: versioned bucket, idempotency table (TTL), training job (1 concurrent run)."""
    import boto3

    _moto_api(moto_url, "/moto-api/reset")
    glue_runs_finish(moto_url)
    kw = {"endpoint_url": moto_url, "region_name": "us-east-1"}
    s3, glue, ddb = boto3.client("s3", **kw), boto3.client("glue", **kw), boto3.client("dynamodb", **kw)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    ddb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    ddb.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    glue.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{BUCKET}/code/glue/train_job.py"},
        ExecutionProperty={"MaxConcurrentRuns": 1},
        DefaultArguments={"--store_uri": f"s3://{BUCKET}", "--input": f"s3://{BUCKET}/raw/"},
    )
    settings = Settings(
        store_uri=f"s3://{BUCKET}",
        aws_endpoint_url=moto_url,
        aws_region="us-east-1",
        kv_backend="dynamodb",
        idempotency_table=TABLE,
        launcher="glue",
        glue_job_name=JOB,
    )
    yield Aws(moto_url, settings, s3, glue, ddb)
    glue_runs_finish(moto_url)


FAKE_TRAIN = [sys.executable, str(HERE / "fake_train.py")]


@pytest.fixture
def local_settings(tmp_path, monkeypatch) -> Settings:
    """Embedded mode on a tmp store, training replaced by ``fake_train.py`` (no Spark)."""
    monkeypatch.setenv("FAKE_TRAIN_LOG", str(tmp_path / "fake_train.log"))
    monkeypatch.setenv("FAKE_TRAIN_SECONDS", "1.5")
    return Settings(
        store_uri=str(tmp_path / "store"),
        kv_backend="sqlite",
        launcher="local",
        local_train_command=" ".join(FAKE_TRAIN),
        watch_settle_s=0.0,
    )
