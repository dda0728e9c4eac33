"""Every writer of raw/ and quarantine/ asks S3 for SSE-KMS with the stack's data key; other prefixes do not.

Against the emulator over HTTP: the object's own encryption headers (HeadObject) are read back after each
write path the code has — the store's put / copy / upload, the intake's versioned copy (Lambda) and the
training job's quarantine (Glue). In AWS the bucket policy refuses a write there without the key; the
emulator cannot evaluate that condition (tools/emulator/server.py), so this test stands in for it.
"""

from __future__ import annotations

import urllib.request

import aws_calls
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
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})  # as the stack's
    key_arn = session.client("kms", endpoint_url=emulator).create_key(Description="data key")["KeyMetadata"]["Arn"]
    for name in ("landing/a.csv", "landing/b.csv", "landing/c.csv"):
        s3.put_object(Bucket=BUCKET, Key=name, Body=b"cc_num,amt\n4111111111111111,1.0\n")
    return s3, key_arn


def _encryption(s3, key: str) -> tuple[str | None, str | None]:
    head = s3.head_object(Bucket=BUCKET, Key=key)
    return head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")


def test_every_write_path_to_raw_and_quarantine_uses_the_data_key(emulator, bucket_and_key, tmp_path):
    """Each write path as the component that has it makes it (and the IAM check sees it as that one's)."""
    from retrain_lambda import intake
    from spark_jobs import validate

    s3, key_arn = bucket_and_key
    store = store_from_settings(
        Settings(store_uri=f"s3://{BUCKET}", aws_endpoint_url=emulator, aws_region=REGION, data_kms_key_arn=key_arn)
    )
    assert isinstance(store, S3Store)
    local = tmp_path / "q.csv"
    local.write_bytes(b"cc_num\n4111111111111111\n")
    version = s3.head_object(Bucket=BUCKET, Key="landing/b.csv")["VersionId"]
    with aws_calls.component("retrain_lambda"):  # the Lambda's archive / quarantine copy of a landed version
        intake._copy(store, "landing/b.csv", "raw/b.csv", version)
        intake._copy(store, "landing/a.csv", "quarantine/a.csv", version_of(s3, "landing/a.csv"))
    s3.put_object(Bucket=BUCKET, Key="raw/c.csv", Body=b"not,the,contract\n")  # an archived input the job rejects
    with aws_calls.component("train_job"):  # the Glue job's quarantine: a copy, an upload, the reason
        validate.quarantine(store, f"s3://{BUCKET}/raw/c.csv", "c.csv", {"error": "bad header"})
        store.upload(local, "quarantine/uploaded.csv")
        store.write_bytes("models/latest.json", b"{}")
    sensitive = ["raw/b.csv", "quarantine/a.csv", "quarantine/uploaded.csv", "quarantine/c.csv",
                 "quarantine/c.csv.reason.json"]  # fmt: skip
    assert {k: _encryption(s3, k) for k in sensitive} == {k: ("aws:kms", key_arn) for k in sensitive}
    assert _encryption(s3, "models/latest.json")[0] != "aws:kms"


def version_of(s3, key: str) -> str:
    return s3.head_object(Bucket=BUCKET, Key=key)["VersionId"]


def test_without_a_key_nothing_asks_for_kms(emulator, bucket_and_key):
    """The embedded default and a stack without the key: writes keep the bucket's default encryption."""
    s3, _ = bucket_and_key
    store = S3Store(f"s3://{BUCKET}", endpoint_url=emulator, region=REGION)
    with aws_calls.component("train_job"):
        store.write_bytes("quarantine/x.csv.reason.json", b"{}")
    assert store.encryption_args("quarantine/x.csv.reason.json") == {}
    assert _encryption(s3, "quarantine/x.csv.reason.json")[0] != "aws:kms"
