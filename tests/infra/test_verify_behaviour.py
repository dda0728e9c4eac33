"""Each behaviour check fails when the deployment misbehaves, on one shared deployment.

Unlike ``test_verify_broken.py`` (one fresh deployment per defect), these defects are state or
behaviour put on the module's one healthy deployment: a misbehaving function, code uploaded but not
deployed, bucket settings undone after the deploy, a metric renamed in the code. A test that changes
the deployment puts it back before it ends, so the order of the tests does not matter.
"""

from __future__ import annotations

import json

import pytest
import verify_end_to_end
import verify_glue_job
import verify_lambda_function


def _run(module, deployed, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = module.main(deployed.argv_for(module, *extra))
    return rc, capsys.readouterr().out


# ----------------------------------------------------------------------------- the Lambda's code
def test_lambda_runs_other_code_than_uploaded_and_built(healthy, capsys, tmp_path, monkeypatch):
    """A new zip uploaded without updating the function, and a local build that differs from both."""
    s3 = healthy.session.client("s3", endpoint_url=healthy.url)
    bucket, key = healthy.outputs["BucketName"], "code/lambda/retrain.zip"
    deployed_zip = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=b"PK\x05\x06" + bytes(18))
    other = tmp_path / "other.zip"
    other.write_bytes(b"PK\x05\x06" + bytes(17) + b"\x01")
    monkeypatch.setattr(healthy, "lambda_zip", other)
    try:
        rc, out = _run(verify_lambda_function, healthy, capsys)
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=deployed_zip)  # the function's code is the latest again
    assert rc == 1, out
    assert "of the uploaded zip" in out and "the stack was not updated after the upload" in out, out
    assert "runs another build than this checkout's" in out, out


# ----------------------------------------------------------------------------- the landing/ flow
# Stand-ins for a deployed function that misbehaves, run where ``--invoke-handler-locally`` runs the real
# handler; each does its wrong thing through the same (emulated) AWS APIs.
def _archive(dep, key: str) -> str:
    s3 = dep.client("s3")
    raw = "raw/" + key.removeprefix("landing/")
    s3.copy_object(Bucket=dep.bucket, Key=raw, CopySource={"Bucket": dep.bucket, "Key": key})
    s3.delete_object(Bucket=dep.bucket, Key=key)
    return raw


def _quarantine(dep, key: str) -> None:
    s3 = dep.client("s3")
    dst = "quarantine/" + key.removeprefix("landing/")
    s3.copy_object(Bucket=dep.bucket, Key=dst, CopySource={"Bucket": dep.bucket, "Key": key})
    reason = {"error": "header does not match the contract", "source": key}
    s3.put_object(Bucket=dep.bucket, Key=f"{dst}.reason.json", Body=json.dumps(reason).encode())
    s3.delete_object(Bucket=dep.bucket, Key=key)


def _keys(events) -> list[str]:
    return [e["Records"][0]["s3"]["object"]["key"] for e in events]


def _record(dep, run_id: str, files: list[str], job_run_id: str | None) -> None:
    rec = {"run_id": run_id, "trigger": "file", "files": files, "launcher": "glue", "status": "started",
           "requested_at": "2026-01-01T00:00:00Z", "job_run_id": job_run_id}  # fmt: skip
    dep.client("s3").put_object(Bucket=dep.bucket, Key=f"runs/requests/{run_id}.json", Body=json.dumps(rec).encode())


def starts_an_unrecorded_run(dep, events):
    """Archives the valid file and starts *a* run, but no launch record names the file (the old check passed)."""
    good, bad = _keys(events)
    _archive(dep, good)
    _quarantine(dep, bad)
    dep.client("glue").start_job_run(JobName=dep.output("GlueJobName"), Arguments={"--trigger": "file"})
    return []


def records_a_run_it_did_not_start(dep, events):
    """The launch record lists the file, but the Glue run it names was started for another run_id."""
    good, bad = _keys(events)
    raw = _archive(dep, good)
    _quarantine(dep, bad)
    other = dep.client("glue").start_job_run(JobName=dep.output("GlueJobName"), Arguments={"--run_id": "other"})
    _record(dep, "r-verify", [raw], other["JobRunId"])
    return []


def lets_the_broken_file_through(dep, events):
    """Both files archived and listed in the run; nothing quarantined."""
    raws = [_archive(dep, k) for k in _keys(events)]
    run = dep.client("glue").start_job_run(JobName=dep.output("GlueJobName"), Arguments={"--run_id": "r-both"})
    _record(dep, "r-both", raws, run["JobRunId"])
    return []


E2E_CASES = [
    (starts_an_unrecorded_run, ["FAIL  e2e: valid file started its run", "no runs/requests/<run_id>.json written"]),
    (records_a_run_it_did_not_start, ["--run_id of Glue run", "expected 'r-verify', got 'other'"]),
    (lets_the_broken_file_through, ["FAIL  e2e: broken file moved to quarantine/ with its reason - no quarantine/",
                                    "was copied to raw/"]),
]  # fmt: skip


@pytest.mark.parametrize(("handler", "messages"), E2E_CASES, ids=[c[0].__name__ for c in E2E_CASES])
def test_end_to_end_fails_on_a_misbehaving_function(healthy, capsys, monkeypatch, handler, messages):
    monkeypatch.setattr(verify_end_to_end, "_invoke_locally", handler)
    rc, out = _run(verify_end_to_end, healthy, capsys, "--invoke-handler-locally")
    assert rc == 1, out
    for message in messages:
        assert message in out, f"missing {message!r} in:\n{out}"


# ----------------------------------------------------------------------------- alarms and the code
def test_alarms_follow_the_metric_names_the_code_publishes(healthy, capsys, monkeypatch):
    """The alarm checks take metric names from fraud_detection.monitoring: rename one there and they fail."""
    from fraud_detection import monitoring

    monkeypatch.setattr(monitoring, "DRIFT_FOUND", "DriftDetected")
    rc, out = _run(verify_glue_job, healthy, capsys)
    assert rc == 1 and "no alarm on FraudDetection/DriftDetected" in out, out


# ----------------------------------------------------------------------------- the bucket's behaviour
def test_bucket_serving_plain_http_fails(healthy, capsys):
    """The emulator serves plain HTTP and ignores the TLS condition: exactly a bucket whose rule does not hold."""
    rc, out = _run(verify_end_to_end, healthy, capsys, "--no-functional", "--runtime-checks", "always")
    assert rc == 1, out
    assert "FAIL  e2e: an object readable over TLS is refused over plain HTTP - " in out, out
    assert "was served over plain HTTP" in out, out


@pytest.mark.parametrize(
    ("undo", "message"),
    [("versioning", "got no version id: versioning is off"), ("encryption", "was stored unencrypted")],
)
def test_writes_unversioned_or_unencrypted_fail(healthy, capsys, undo, message):
    """Versioning suspended / default encryption removed after the deploy: the check's own writes show it."""
    s3 = healthy.session.client("s3", endpoint_url=healthy.url)
    bucket = healthy.outputs["BucketName"]
    encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    if undo == "versioning":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    else:
        s3.delete_bucket_encryption(Bucket=bucket)
    try:
        rc, out = _run(verify_end_to_end, healthy, capsys, "--invoke-handler-locally")
    finally:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=encryption)
    assert rc == 1, out
    assert "FAIL  e2e: put a valid and a broken CSV under landing/: stored versioned and encrypted - " in out, out
    assert message in out, out
