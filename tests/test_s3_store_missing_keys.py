"""S3Store.head on AWS behaviour the emulator does not reproduce: S3 answers 403 (not 404) for a missing
key when the caller may list only some prefixes of the bucket, as every role of infra/template.yaml may.
The store must then call the key missing (after a listing of exactly that key shows it is not there), and
still raise a 403 for an object that exists. botocore's Stubber plays S3's answers; no AWS call is made."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from fraud_detection.storage import S3Store


@pytest.fixture
def s3():
    store = S3Store("s3://bucket/prefix", region="us-east-1")
    with Stubber(store.client) as stub:
        yield store, stub


def _head_403(stub: Stubber, key: str) -> None:
    stub.add_client_error(
        "head_object", service_error_code="403", http_status_code=403, expected_params={"Bucket": "bucket", "Key": key}
    )


def _list(stub: Stubber, key: str, keys: list[str]) -> None:
    stub.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": k, "Size": 1, "ETag": '"e"'} for k in keys], "KeyCount": len(keys)},
        expected_params={"Bucket": "bucket", "Prefix": key, "MaxKeys": 1},
    )


def test_a_403_for_a_key_the_listing_does_not_show_means_missing(s3):
    store, stub = s3
    _head_403(stub, "prefix/models/latest.json")
    _list(stub, "prefix/models/latest.json", [])
    assert store.head("models/latest.json") is None
    _head_403(stub, "prefix/raw/a.csv")
    _list(stub, "prefix/raw/a.csv", ["prefix/raw/a.csv.bak"])  # a longer key with the same prefix
    assert store.head("raw/a.csv") is None


def test_a_403_for_an_existing_key_is_a_real_denial(s3):
    store, stub = s3
    _head_403(stub, "prefix/models/v1/model.joblib")
    _list(stub, "prefix/models/v1/model.joblib", ["prefix/models/v1/model.joblib"])
    with pytest.raises(ClientError):
        store.head("models/v1/model.joblib")


def test_a_denied_listing_is_not_taken_for_a_missing_key(s3):
    store, stub = s3
    _head_403(stub, "prefix/secret/x")
    stub.add_client_error("list_objects_v2", service_error_code="AccessDenied", http_status_code=403)
    with pytest.raises(ClientError):
        store.head("secret/x")


def test_a_403_for_a_read_of_a_key_the_listing_does_not_show_means_missing(s3):
    """A run record not written yet reads as missing (StorageError), not as a crash on AccessDenied."""
    from fraud_detection.storage import StorageError

    store, stub = s3
    stub.add_client_error(
        "get_object", service_error_code="AccessDenied", http_status_code=403,
        expected_params={"Bucket": "bucket", "Key": "prefix/runs/r1.json"},
    )  # fmt: skip
    _list(stub, "prefix/runs/r1.json", [])
    with pytest.raises(StorageError, match="not found"):
        store.read_bytes("runs/r1.json")
    stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
    _list(stub, "prefix/runs/r1.json", ["prefix/runs/r1.json"])
    with pytest.raises(ClientError):
        store.read_bytes("runs/r1.json")
