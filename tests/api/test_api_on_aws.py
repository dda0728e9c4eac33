"""The API in its AWS configuration: model store in S3, card history and prediction log in DynamoDB,
all on the local emulator (moto server, real HTTP). Its S3 and DynamoDB calls are the ones the IAM call
check (tests/aws_calls.py) holds against the API task role: reading a model that is not published yet
(S3 answers 403 to a role that may list only models/), then the published one, then scoring."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from api_support import make_settings, to_request

from fraud_detection import artifacts, card_history, prediction_log

BUCKET = "fraud-api-on-aws"


@pytest.fixture
def aws(aws_emulator, monkeypatch):
    import boto3
    import requests

    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    requests.post(f"{aws_emulator}/moto-api/reset", timeout=10)
    kw = {"endpoint_url": aws_emulator, "region_name": "us-east-1"}
    s3, dynamo = boto3.client("s3", **kw), boto3.client("dynamodb", **kw)
    s3.create_bucket(Bucket=BUCKET)
    card_history.create_dynamo_table(dynamo, "hist")
    prediction_log.create_dynamo_table(dynamo, "plog")
    return s3, dynamo


def _publish(s3, model_template: Path) -> None:
    """What the training job does, with the test's own client: the version's files, then the pointer."""
    files = sorted(p for p in model_template.rglob("*") if p.is_file() and "secrets" not in p.parts)  # not keys
    for path in sorted(files, key=lambda p: p.name == "latest.json"):
        s3.put_object(Bucket=BUCKET, Key=path.relative_to(model_template).as_posix(), Body=path.read_bytes())


def test_api_on_s3_and_dynamodb_waits_for_a_model_then_scores(aws, aws_emulator, model_template, api_key, auth, rows):
    from fastapi.testclient import TestClient

    from api.main import create_app

    s3, dynamo = aws
    settings = make_settings(
        model_template, api_key[1], store_uri=f"s3://{BUCKET}", aws_endpoint_url=aws_emulator, aws_region="us-east-1",
        kv_backend="dynamodb", card_history_table="hist", prediction_log_table="plog",
        model_signing_key=(model_template / artifacts.SIGNING_KEY_FILE).read_text().strip(),  # as from Secrets Manager
    )  # fmt: skip
    with TestClient(create_app(settings)) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/ready").status_code == 503  # no model yet
        _publish(s3, model_template)
        deadline = time.monotonic() + 20
        while c.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the published model was not picked up"
            time.sleep(0.1)
        r = c.post("/v1/score", json=to_request(rows[0]), headers=auth)
        assert r.status_code == 200, r.text
    assert dynamo.scan(TableName="plog", Select="COUNT")["Count"] == 1
