"""The Lambda zip that ``deploy`` builds, unpacked into a stand-in for the python3.11 runtime (boto3 / botocore
at the runtime's documented versions, nothing else; see tests/shipped_lambda.py), handling events against the
emulator: a good file under landing/, the same event twice, a Glue "Job State Change"."""

from __future__ import annotations

import pytest
import shipped_lambda
import standin_env
from conftest import BUCKET, JOB, TABLE, glue_runs_finish, glue_runs_stay_running, good_csv

from retrain_lambda import events


@pytest.fixture(scope="module")
def task_root():
    with standin_env.scratch("lambda") as work:
        yield shipped_lambda.build_and_unpack(work)


def function_env(aws) -> dict[str, str]:
    """The variables the template gives the function (AWS mode), pointed at the emulator."""
    return {
        "FRAUD_STORE_URI": f"s3://{BUCKET}",
        "FRAUD_KV_BACKEND": "dynamodb",
        "FRAUD_IDEMPOTENCY_TABLE": TABLE,
        "FRAUD_LAUNCHER": "glue",
        "FRAUD_GLUE_JOB_NAME": JOB,
        **shipped_lambda.aws_env("us-east-1", aws.url),
    }


def s3_event(aws, key: str, put: dict) -> dict:
    head = aws.s3.head_object(Bucket=BUCKET, Key=key, VersionId=put["VersionId"])
    return events.s3_event(
        BUCKET, key, size=head["ContentLength"], etag=put["ETag"].strip('"'), version_id=put["VersionId"]
    )


def test_the_shipped_handler_runs_from_its_zip_alone(aws, task_root):
    inv = shipped_lambda.invoke(task_root, [{"Event": "s3:TestEvent", "Bucket": BUCKET}], function_env(aws))
    assert inv.results == [{"result": {"ignored": "s3:TestEvent"}}], inv.log
    for name in ("retrain_lambda", "fraud_detection", "pydantic", "pydantic_settings"):
        assert inv.modules[name].startswith(str(task_root)), (name, inv.modules[name])
    boto3_file = inv.modules["boto3"] if "boto3" in inv.modules else None
    assert boto3_file is None or not boto3_file.startswith(str(task_root))  # the runtime's boto3, not shipped
    assert not {"numpy", "sklearn", "pandas", "pyspark"} & set(inv.modules)
    repo_entries = [
        p for p in inv.sys_path if p and (p == str(shipped_lambda.ROOT) or (
            p.startswith(str(shipped_lambda.ROOT) + "/") and not p.startswith(str(standin_env.CACHE))))
    ]  # fmt: skip
    assert not repo_entries and inv.sys_path[0] == str(task_root), inv.sys_path


def test_the_runtime_has_the_documented_sdk_and_nothing_of_ours(task_root):
    python, env = shipped_lambda.runtime_python()
    spec = shipped_lambda.runtime_spec()
    import subprocess

    code = (
        "import boto3, botocore, importlib.util as u; print(boto3.__version__, botocore.__version__, "
        "[m for m in ('numpy', 'pydantic', 'fraud_detection', 'retrain_lambda', 'pip') if u.find_spec(m)])"
    )
    out = subprocess.run([str(python), "-I", "-c", code], env={"PATH": "/usr/bin:/bin", **env},
                         capture_output=True, text=True, check=True).stdout.split(maxsplit=2)  # fmt: skip
    assert out == [spec["sdk"]["boto3"], spec["sdk"]["botocore"], "[]\n"]


def test_good_file_then_the_same_event_twice_start_one_run(aws, task_root):
    key = "landing/2020 jan, v2+final.csv"  # URL-encoded in the event, as S3 sends it
    event = s3_event(aws, key, aws.put(key, good_csv()))
    first, again = shipped_lambda.invoke(task_root, [event, event], function_env(aws)).results

    assert first["result"]["files"][0]["status"] == "accepted", first
    assert first["result"]["files"][0]["raw_key"] == "raw/2020 jan, v2+final.csv"
    assert aws.keys("raw/") == ["raw/2020 jan, v2+final.csv"] and aws.keys("landing/") == []
    assert aws.s3.get_object(Bucket=BUCKET, Key="raw/2020 jan, v2+final.csv")["Body"].read() == good_csv()
    (run,) = aws.job_runs()
    launch = first["result"]["launch"]
    assert launch["status"] == "started" and launch["detail"] == run["Id"]
    assert run["Arguments"]["--run_id"] == launch["run_id"] and run["Arguments"]["--trigger"] == "file"

    assert again["result"]["files"][0]["status"] == "duplicate" and again["result"]["launch"] is None, again
    assert len(aws.job_runs()) == 1


def test_glue_state_change_starts_the_pending_follow_up(aws, task_root):
    glue_runs_stay_running(aws.url)
    first_key, second_key = "landing/may.csv", "landing/jun.csv"
    first = s3_event(aws, first_key, aws.put(first_key, good_csv()))
    second = s3_event(aws, second_key, aws.put(second_key, good_csv()))
    started, pending = shipped_lambda.invoke(task_root, [first, second], function_env(aws)).results
    assert started["result"]["launch"]["status"] == "started"
    assert pending["result"]["launch"]["status"] == "pending"
    (running,) = aws.job_runs()

    glue_runs_finish(aws.url)
    change = {
        "version": "0",
        "source": "aws.glue",
        "detail-type": "Glue Job State Change",
        "detail": {"jobName": JOB, "jobRunId": running["Id"], "state": "SUCCEEDED", "message": "done"},
    }
    (out,) = shipped_lambda.invoke(task_root, [change], function_env(aws)).results
    follow_up = out["result"]["glue_state_change"]["follow_up"]
    assert follow_up["status"] == "started" and follow_up["run_id"] == pending["result"]["launch"]["run_id"], out
    runs = aws.job_runs()
    assert len(runs) == 2
    (new,) = [r for r in runs if r["Id"] != running["Id"]]
    assert new["Arguments"]["--run_id"] == follow_up["run_id"]
