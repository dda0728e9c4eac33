"""The retraining handler against a local AWS emulator (moto server, real boto3 calls): S3 versioned bucket,
DynamoDB idempotency table, Glue job limited to one concurrent run."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse

import pytest
from conftest import BAD_FILES, BUCKET, JOB, TABLE, glue_runs_finish, glue_runs_stay_running, good_csv

from fraud_detection import runs
from fraud_detection.idempotency import AlreadyInProgress
from fraud_detection.launcher import load_request
from retrain_lambda import events
from retrain_lambda.handler import handler
from retrain_lambda.intake import Deps, process_glue_state_change, process_objects


def s3_event_for(aws, key: str, put: dict, event_name: str = "ObjectCreated:Put") -> dict:
    """The notification S3 sends (as moto delivers it to SQS): key URL-encoded, version id, ETag."""
    head = aws.s3.head_object(Bucket=BUCKET, Key=key, VersionId=put["VersionId"])
    ev = events.s3_event(
        BUCKET, key, size=head["ContentLength"], etag=put["ETag"].strip('"'), version_id=put["VersionId"]
    )
    ev["Records"][0]["eventName"] = event_name
    return ev


@pytest.fixture
def deps(aws) -> Deps:
    return Deps.from_settings(aws.settings)


def run(deps, event) -> dict:
    return process_objects(events.parse_s3_records(event), deps).as_dict()


def test_event_parsing_decodes_keys_and_skips_other_records():
    ev = events.s3_event(BUCKET, "landing/2020 jan, v2+final.csv", size=5, etag="abc", version_id="v1")
    assert ev["Records"][0]["s3"]["object"]["key"] == "landing/2020+jan%2C+v2%2Bfinal.csv"  # as S3 encodes it
    ev["Records"].append({"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete", "s3": {}})
    ev["Records"].append({"eventSource": "aws:sqs"})
    (rec,) = events.parse_s3_records(ev)
    assert rec.key == "landing/2020 jan, v2+final.csv"
    assert (rec.bucket, rec.size, rec.etag, rec.version_id) == (BUCKET, 5, "abc", "v1")
    assert rec.idempotency_key.startswith("s3obj:") and len(rec.idempotency_key) == 6 + 64  # a digest
    other = events.parse_s3_records(events.s3_event(BUCKET, rec.key, size=5, etag="abc", version_id="v2"))[0]
    assert other.idempotency_key != rec.idempotency_key  # another version of the same key
    with pytest.raises(events.EventError):
        events.parse_s3_records({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]})


def test_good_file_archived_and_one_job_run_started_with_the_job_arguments(aws, deps):
    key = "landing/2020 jan, v2+final.csv"  # needs URL-encoding in the event
    put = aws.put(key, good_csv())
    out = run(deps, s3_event_for(aws, key, put))

    (f,) = out["files"]
    assert f["status"] == "accepted" and f["raw_key"] == "raw/2020 jan, v2+final.csv"
    assert aws.keys("raw/") == ["raw/2020 jan, v2+final.csv"]
    assert aws.keys("landing/") == []  # consumed from the drop zone
    assert aws.s3.get_object(Bucket=BUCKET, Key="raw/2020 jan, v2+final.csv")["Body"].read() == good_csv()
    (jr,) = aws.job_runs()
    run_id = out["launch"]["run_id"]
    assert out["launch"]["status"] == "started" and out["launch"]["detail"] == jr["Id"]
    assert {k: jr["Arguments"][k] for k in ("--store_uri", "--input", "--trigger", "--run_id")} == {
        "--store_uri": f"s3://{BUCKET}",
        "--input": f"s3://{BUCKET}/raw/",
        "--trigger": "file",
        "--run_id": run_id,
    }
    req = load_request(deps.store, run_id)
    assert req.status == "started" and req.job_run_id == jr["Id"] and req.files == ["raw/2020 jan, v2+final.csv"]


def test_the_idempotency_table_keeps_no_card_number_from_file_names(aws, deps):
    """A sender's file name lands in the DynamoDB items as a digest (the key) and as the stored name."""
    card, grouped = "4000323412349873", "4000-3234-1234-9873"
    names = [f"landing/card {card}.csv", f"landing/{grouped} bad.csv"]
    for key, body in zip(names, (good_csv(), BAD_FILES["wrong-columns.csv"]), strict=True):
        out = run(deps, s3_event_for(aws, key, aws.put(key, body)))
        assert out["files"][0]["status"] in ("accepted", "quarantined"), out
    items = aws.dynamodb.scan(TableName=TABLE)["Items"]
    assert sum(i["id"]["S"].startswith("s3obj:") for i in items) == 2, items  # and the launcher's run item
    blob = json.dumps(items)
    assert "card-number-redacted" in blob and card not in blob and grouped not in blob, blob


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_quarantined_with_reason_and_starts_nothing(aws, deps, name):
    key = f"landing/{name}"
    put = aws.put(key, BAD_FILES[name])
    out = run(deps, s3_event_for(aws, key, put))

    (f,) = out["files"]
    assert f["status"] == "quarantined", f
    assert out["launch"] is None and aws.job_runs() == []
    assert sorted(aws.keys("quarantine/")) == [f"quarantine/{name}", f"quarantine/{name}.reason.json"]
    reason = json.loads(aws.s3.get_object(Bucket=BUCKET, Key=f"quarantine/{name}.reason.json")["Body"].read())
    assert reason["error"] == f["reason"] and reason["file"] == name
    assert aws.keys("landing/") == [] and aws.keys("raw/") == []
    expected = {
        "wrong-columns.csv": "missing=",
        "empty.csv": "empty",
        "header-only.csv": "no rows",
        "notes.txt": "not a .csv",
        "binary.csv": "not UTF-8",
    }[name]
    assert expected in reason["error"]


def test_same_event_twice_and_two_events_for_one_object_start_one_run(aws, deps):
    key = "landing/feb.csv"
    put = aws.put(key, good_csv())
    first = run(deps, s3_event_for(aws, key, put))
    again = run(deps, s3_event_for(aws, key, put))
    copy_event = run(deps, s3_event_for(aws, key, put, "ObjectCreated:Copy"))

    assert first["files"][0]["status"] == "accepted"
    for out in (again, copy_event):
        assert out["files"][0]["status"] == "duplicate" and out["launch"] is None
        assert out["files"][0]["run_id"] == first["launch"]["run_id"]
    assert len(aws.job_runs()) == 1 and aws.keys("raw/") == ["raw/feb.csv"]


def test_new_version_of_same_key_is_a_new_object(aws, deps):
    put1 = aws.put("landing/mar.csv", good_csv(2))
    run(deps, s3_event_for(aws, "landing/mar.csv", put1))
    put2 = aws.put("landing/mar.csv", good_csv(4))  # a corrected file under the same name
    out = run(deps, s3_event_for(aws, "landing/mar.csv", put2))
    assert out["files"][0]["status"] == "accepted"
    # raw/ is immutable: the second, different file gets its own name
    suffix = re.sub(r"[^A-Za-z0-9]", "", put2["VersionId"])[:16]
    assert sorted(aws.keys("raw/")) == sorted(["raw/mar.csv", f"raw/mar.{suffix}.csv"])
    assert aws.s3.get_object(Bucket=BUCKET, Key=f"raw/mar.{suffix}.csv")["Body"].read() == good_csv(4)
    assert aws.s3.get_object(Bucket=BUCKET, Key="raw/mar.csv")["Body"].read() == good_csv(2)


def test_concurrent_duplicate_events_start_one_run(aws):
    key = "landing/apr.csv"
    put = aws.put(key, good_csv())
    event = s3_event_for(aws, key, put)
    n = 8
    barrier = threading.Barrier(n)
    results, errors = [], []

    def worker():
        d = Deps.from_settings(aws.settings)  # one "Lambda container" each
        barrier.wait(timeout=30)
        try:
            results.append(process_objects(events.parse_s3_records(event), d).as_dict())
        except AlreadyInProgress as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    statuses = sorted(r["files"][0]["status"] for r in results)
    assert statuses.count("accepted") == 1, (statuses, errors)
    assert len(results) + len(errors) == n
    assert len(aws.job_runs()) == 1
    assert aws.keys("raw/") == ["raw/apr.csv"]
    # the invocations that saw the claim in progress fail (so S3 / Lambda retry them): the retry is a duplicate
    retry = run(Deps.from_settings(aws.settings), event)
    assert retry["files"][0]["status"] == "duplicate" and len(aws.job_runs()) == 1


def test_busy_job_records_pending_and_one_follow_up_starts_when_it_ends(aws):
    glue_runs_stay_running(aws.url)
    d = Deps.from_settings(aws.settings)
    outs = []
    for month in ("may", "jun", "jul"):
        put = aws.put(f"landing/{month}.csv", good_csv())
        outs.append(run(d, s3_event_for(aws, f"landing/{month}.csv", put)))
    first, second, third = (o["launch"] for o in outs)
    assert first["status"] == "started"
    assert second["status"] == third["status"] == "pending"
    assert second["run_id"] == third["run_id"] != first["run_id"]  # one follow-up for both files
    assert third["files"] == ["raw/jun.csv", "raw/jul.csv"]
    assert len(aws.job_runs()) == 1
    assert load_request(d.store, second["run_id"]).status == "queued"

    # EventBridge "Glue Job State Change" for the running job: the follow-up starts, once
    glue_runs_finish(aws.url)
    (jr,) = aws.job_runs()
    change = {
        "source": "aws.glue",
        "detail-type": "Glue Job State Change",
        "detail": {"jobName": JOB, "jobRunId": jr["Id"], "state": "SUCCEEDED", "message": "done"},
    }
    out = process_glue_state_change(events.parse_glue_state_change(change), d)
    assert out["follow_up"]["status"] == "started" and out["follow_up"]["run_id"] == second["run_id"]
    runs_now = aws.job_runs()
    assert len(runs_now) == 2
    follow = next(r for r in runs_now if r["Id"] != jr["Id"])
    assert follow["Arguments"]["--run_id"] == second["run_id"] and follow["Arguments"]["--trigger"] == "file"
    assert load_request(d.store, second["run_id"]).files == ["raw/jun.csv", "raw/jul.csv"]
    # the same state-change event again (EventBridge is at-least-once too): nothing more starts
    again = process_glue_state_change(events.parse_glue_state_change(change), d)
    assert again["follow_up"] is None and len(aws.job_runs()) == 2


def test_failed_glue_run_is_recorded_as_failed(aws, deps):
    put = aws.put("landing/aug.csv", good_csv())
    out = run(deps, s3_event_for(aws, "landing/aug.csv", put))
    run_id, job_run_id = out["launch"]["run_id"], out["launch"]["detail"]
    change = {
        "source": "aws.glue",
        "detail-type": "Glue Job State Change",
        "detail": {"jobName": JOB, "jobRunId": job_run_id, "state": "TIMEOUT", "message": "Job timed out"},
    }
    process_glue_state_change(events.parse_glue_state_change(change), deps)
    rec = runs.load_run(deps.store, run_id)
    assert rec.status == "failed" and "TIMEOUT" in rec.error and "Job timed out" in rec.error
    assert aws.keys("models/") == []  # read with the test's client: the function's role cannot read models/


def test_error_before_the_run_is_requested_releases_the_claim_for_the_retry(aws, deps):
    put = aws.put("landing/sep.csv", good_csv())
    event = s3_event_for(aws, "landing/sep.csv", put)
    aws.glue.delete_job(JobName=JOB)  # start_job_run fails (EntityNotFound)
    with pytest.raises(Exception, match="EntityNotFound|not found"):
        run(deps, event)
    assert aws.keys("landing/") == ["landing/sep.csv"]  # not consumed: the retry still has it
    aws.glue.create_job(
        Name=JOB,
        Role="arn:aws:iam::123456789012:role/glue",
        Command={"Name": "glueetl", "ScriptLocation": "s3://x/y.py"},
        ExecutionProperty={"MaxConcurrentRuns": 1},
    )
    out = run(deps, event)  # Lambda's retry of the same event
    assert out["files"][0]["status"] == "accepted" and out["launch"]["status"] == "started"
    assert len(aws.job_runs()) == 1 and aws.keys("raw/") == ["raw/sep.csv"]


def test_handler_entry_point_with_settings_from_the_environment(aws, monkeypatch):
    from fraud_detection import settings as settings_module

    env = {
        "FRAUD_STORE_URI": f"s3://{BUCKET}",
        "FRAUD_AWS_ENDPOINT_URL": aws.url,
        "FRAUD_KV_BACKEND": "dynamodb",
        "FRAUD_IDEMPOTENCY_TABLE": aws.settings.idempotency_table,
        "FRAUD_LAUNCHER": "glue",
        "FRAUD_GLUE_JOB_NAME": JOB,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings_module.get_settings.cache_clear()
    try:
        assert handler({"Event": "s3:TestEvent", "Bucket": BUCKET}, None) == {"ignored": "s3:TestEvent"}
        good, bad = "landing/oct 2020.csv", "landing/oct-broken.csv"
        evs = [s3_event_for(aws, k, aws.put(k, body)) for k, body in ((good, good_csv()), (bad, b"a,b\n1,2\n"))]
        event = {"Records": evs[0]["Records"] + evs[1]["Records"]}  # one notification, two records
        out = handler(json.loads(json.dumps(event)), None)
        assert [f["status"] for f in out["files"]] == ["accepted", "quarantined"]
        assert len(aws.job_runs()) == 1
        assert urllib.parse.unquote_plus(event["Records"][0]["s3"]["object"]["key"]) == good
        with pytest.raises(events.EventError):
            handler({"hello": "world"}, None)
    finally:
        settings_module.get_settings.cache_clear()


def test_real_s3_notification_from_the_emulator_is_parsed_and_handled(aws, deps):
    """The event S3 itself builds (moto delivers it to SQS): URL-encoded key, ETag."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=aws.url, region_name="us-east-1")
    q = sqs.create_queue(QueueName="landing-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "landing/"}]}},
                }
            ]
        },
    )
    key = "landing/déc 2020 (v2)+final.csv"
    put = aws.put(key, good_csv())
    bodies = []
    for _ in range(10):  # bounded: the notification is delivered at once by the emulator
        msgs = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        bodies += [json.loads(m["Body"]) for m in msgs]
        if any("Records" in b for b in bodies):
            break
    s3_events = [b for b in bodies if "Records" in b]
    assert len(s3_events) == 1, bodies
    raw_key_in_event = s3_events[0]["Records"][0]["s3"]["object"]["key"]
    assert raw_key_in_event != key  # S3 URL-encodes it
    (rec,) = events.parse_s3_records(s3_events[0])
    assert rec.key == key and rec.etag == put["ETag"].strip('"')
    assert rec.version_id in (None, put["VersionId"])  # moto omits versionId (real S3 sends it): ETag keys it then
    out = process_objects([rec], deps).as_dict()
    assert out["files"][0]["status"] == "accepted" and aws.keys("raw/") == [f"raw/{key[len('landing/') :]}"]
    assert len(aws.job_runs()) == 1
