"""Every writer of raw/ and quarantine/ asks S3 for SSE-KMS with the stack's data key; other prefixes do not.

Against the emulator over HTTP: the object's own encryption headers (HeadObject) are read back after each
write path the code has — the store's put / copy / upload, the intake's versioned copy (Lambda) and the
training job's quarantine (Glue). In AWS the bucket policy refuses a write there without the key; the
emulator cannot evaluate that condition (tools/emulator/server.py), so this test stands in for it.
"""

from __future__ import annotations

import urllib.request

import boto3
import pytest

from fraud_detection.settings import Settings
from fraud_detection.storage import S3Store, store_from_settings

REGION = "us-east-1"
BUCKET = "fraud-keytest"


def reset(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - local emulator
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310


@pytest.fixture
def bucket_and_key(emulator):
    reset(emulator)
    session = boto3.Session(region_name=REGION)
    s3 = session.client("s3", endpoint_url=emulator)
    s3.create_bucket(Bucket=BUCKET)
    key_arn = session.client("kms", endpoint_url=emulator).create_key(Description="data key")["KeyMetadata"]["Arn"]
    for name in ("landing/a.csv", "landing/b.csv", "landing/c.csv"):
        s3.put_object(Bucket=BUCKET, Key=name, Body=b"cc_num,amt\n4111111111111111,1.0\n")
    return s3, key_arn


def _encryption(s3, key: str) -> tuple[str | None, str | None]:
    head = s3.head_object(Bucket=BUCKET, Key=key)
    return head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")


def test_every_write_path_to_raw_and_quarantine_uses_the_data_key(emulator, bucket_and_key, tmp_path):
    from retrain_lambda import intake
    from spark_jobs import validate

    s3, key_arn = bucket_and_key
    store = store_from_settings(
        Settings(store_uri=f"s3://{BUCKET}", aws_endpoint_url=emulator, aws_region=REGION, data_kms_key_arn=key_arn)
    )
    assert isinstance(store, S3Store)
    local = tmp_path / "q.csv"
    local.write_bytes(b"cc_num\n4111111111111111\n")

    store.write_bytes("raw/put.csv", b"x")
    store.copy("landing/a.csv", "raw/copied.csv")
    store.upload(local, "quarantine/uploaded.csv")
    intake._copy(store, "landing/b.csv", "raw/b.csv", None)  # the Lambda's archive / quarantine copy
    validate.quarantine(store, f"s3://{BUCKET}/landing/c.csv", "c.csv", {"error": "bad header"})  # the Glue job's
    store.write_bytes("models/latest.json", b"{}")
    store.write_bytes("curated/part-0.parquet", b"x")

    sensitive = ["raw/put.csv", "raw/copied.csv", "quarantine/uploaded.csv", "raw/b.csv",
                 "quarantine/c.csv", "quarantine/c.csv.reason.json"]  # fmt: skip
    assert {k: _encryption(s3, k) for k in sensitive} == {k: ("aws:kms", key_arn) for k in sensitive}
    for other in ("models/latest.json", "curated/part-0.parquet"):
        assert _encryption(s3, other)[0] != "aws:kms", other


def test_without_a_key_nothing_asks_for_kms(emulator, bucket_and_key):
    """The embedded default and a stack without the key: writes keep the bucket's default encryption."""
    s3, _ = bucket_and_key
    store = S3Store(f"s3://{BUCKET}", endpoint_url=emulator, region=REGION)
    store.write_bytes("raw/put.csv", b"x")
    assert store.encryption_args("raw/put.csv") == {}
    assert _encryption(s3, "raw/put.csv")[0] != "aws:kms"
