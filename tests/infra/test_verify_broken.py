"""Each deployment check fails, with a message naming the problem, when its part is misconfigured.

Every case deploys the template with one deliberate defect into a fresh emulator and runs the check
that owns that part.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.request
from pathlib import Path

import pytest
import verify_ecs_api
import verify_end_to_end
import verify_glue_job
import verify_iam_roles
import verify_lambda_function


def _props(template: dict, logical_id: str) -> dict:
    return template["Resources"][logical_id]["Properties"]


def glue_4_and_parallel_runs(t: dict) -> None:
    _props(t, "TrainJob")["GlueVersion"] = "4.0"
    _props(t, "TrainJob")["ExecutionProperty"]["MaxConcurrentRuns"] = 3
    del _props(t, "TrainJob")["DefaultArguments"]["--extra-py-files"]


def lambda_without_dlq_on_old_runtime(t: dict) -> None:
    del t["Resources"]["RetrainEventInvokeConfig"]
    _props(t, "RetrainFunction")["Runtime"] = "python3.9"
    _props(t, "RetrainFunction")["Environment"]["Variables"]["FRAUD_LAUNCHER"] = "local"


def notification_on_wrong_prefix(t: dict) -> None:
    cfg = _props(t, "DataBucket")["NotificationConfiguration"]["Fn::If"][1]
    cfg["LambdaConfigurations"][0]["Filter"]["S3Key"]["Rules"][0]["Value"] = "incoming/"


def ecs_writable_root_no_healthcheck_no_cpu_scaling(t: dict) -> None:
    container = _props(t, "ApiTaskDefinition")["ContainerDefinitions"][0]
    container["ReadonlyRootFilesystem"] = False
    del container["HealthCheck"]
    del t["Resources"]["ApiCpuScalingPolicy"]


def ecs_target_group_checks_root(t: dict) -> None:
    _props(t, "ApiTargetGroup")["HealthCheckPath"] = "/"


def iam_wildcard_and_api_writes_models(t: dict) -> None:
    stmts = _props(t, "RetrainFunctionRole")["Policies"][0]["PolicyDocument"]["Statement"]
    stmts.append({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    api = _props(t, "ApiTaskRole")["Policies"][0]["PolicyDocument"]["Statement"]
    read_models = next(s for s in api if s["Sid"] == "ReadModels")
    read_models["Action"] = ["s3:GetObject", "s3:PutObject"]


def iam_api_loses_batch_write(t: dict) -> None:
    """Issue 14 item 9: the API writes with BatchWriteItem; the old check looked at PutItem / Query only."""
    for st in _props(t, "ApiTaskRole")["Policies"][0]["PolicyDocument"]["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        st["Action"] = [a for a in actions if a != "dynamodb:BatchWriteItem"] or ["dynamodb:DescribeTable"]


def iam_glue_loses_raw_read(t: dict) -> None:
    stmts = _props(t, "GlueJobRole")["Policies"][0]["PolicyDocument"]["Statement"]
    read = next(s for s in stmts if s["Sid"] == "ReadInputsAndCode")
    read["Resource"] = [r for r in read["Resource"] if "/raw/" not in r["Fn::Sub"]]


def live_drift_on_demand_and_off_the_alarm(t: dict) -> None:
    trigger = _props(t, "DailyLiveDriftTrigger")
    trigger["Type"] = "ON_DEMAND"
    del trigger["Schedule"], trigger["StartOnCreation"]
    _props(t, "LiveDriftJob")["DefaultArguments"]["--model_name"] = "some-other-model"


def iam_live_drift_cannot_scan_but_writes_models(t: dict) -> None:
    stmts = _props(t, "LiveDriftJobRole")["Policies"][0]["PolicyDocument"]["Statement"]
    stmts[:] = [s for s in stmts if s["Sid"] != "ScanPredictionLog"]
    reports = next(s for s in stmts if s["Sid"] == "ReadWriteDriftReports")
    reports["Resource"] = [
        reports["Resource"],
        {"Fn::Sub": reports["Resource"]["Fn::Sub"].replace("reports/drift", "models")},
    ]


def api_alarms_notify_elsewhere_or_not_at_all(t: dict) -> None:
    _props(t, "Api5xxRateAlarm")["AlarmActions"] = ["arn:aws:sns:us-east-1:123456789012:someone-else"]
    _props(t, "ApiP99LatencyAlarm")["ActionsEnabled"] = False


def glue_alarms_select_what_nothing_publishes(t: dict) -> None:
    _props(t, "ModelQualityAlarm")["Dimensions"][0]["Value"] = "fraud-model"  # the jobs publish --model_name
    _props(t, "TrainingFailedAlarm")["Dimensions"][0]["Value"] = "some-other-rule"
    _props(t, "DataDriftAlarm")["Namespace"] = "Fraud"


def bucket_without_tls_policy_or_versioning(t: dict) -> None:
    del t["Resources"]["DataBucketPolicy"]
    _props(t, "DataBucket")["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] = False


CASES = [
    (glue_4_and_parallel_runs, verify_glue_job, [], ["GlueVersion is '4.0'", "MaxConcurrentRuns: expected 1, got 3",
                                                   "--extra-py-files: expected"]),
    (lambda_without_dlq_on_old_runtime, verify_lambda_function, [],
     ["runtime: expected 'python3.11', got 'python3.9'", "on-failure destination / DLQ is",
      "'FRAUD_LAUNCHER': 'local'"]),
    (notification_on_wrong_prefix, verify_lambda_function, [], ["no ObjectCreated notification with prefix landing/"]),
    (ecs_writable_root_no_healthcheck_no_cpu_scaling, verify_ecs_api, ["--no-functional"],
     ["readonlyRootFilesystem is not true", "no container health check",
      "no target-tracking policy on ['ECSServiceAverageCPUUtilization']"]),
    (ecs_target_group_checks_root, verify_ecs_api, ["--no-functional"],
     ["health check path: expected '/health', got '/'"]),
    (iam_wildcard_and_api_writes_models, verify_iam_roles, [],
     ["fraud-ci-retrain-lambda: no wildcard actions - inline:retrain: Action s3:*",
      "s3:PutObject on arn:aws:s3:::fraud-ci-123456789012-us-east-1/models/latest.json",
      "s3:DeleteObject on arn:aws:s3:::fraud-ci-123456789012-us-east-1/raw/a.csv (raw/ is never deleted"]),
    (iam_api_loses_batch_write, verify_iam_roles, [],
     ["FAIL  iam: fraud-ci-api-task: can make every call its component makes - denied: dynamodb:BatchWriteItem on "
      "arn:aws:dynamodb:us-east-1:123456789012:table/fraud-ci-card-history (dynamodb.BatchWriteItem",
      "dynamodb:BatchWriteItem on arn:aws:dynamodb:us-east-1:123456789012:table/fraud-ci-prediction-log"]),
    (iam_glue_loses_raw_read, verify_iam_roles, [], ["FAIL  iam: fraud-ci-glue-job: can make every call its component "
                                                     "makes - denied: ",
                                                     "s3:GetObject on arn:aws:s3:::fraud-ci-123456789012-us-east-1/raw/"
                                                     "2019/history.csv (s3.GetObject"]),
    (live_drift_on_demand_and_off_the_alarm, verify_glue_job, [],
     ["trigger type: expected 'SCHEDULED', got 'ON_DEMAND'",
      "the training and live-drift jobs publish DriftFound under different names"]),
    (iam_live_drift_cannot_scan_but_writes_models, verify_iam_roles, [],
     ["FAIL  iam: fraud-ci-live-drift-job: can make every call its component makes - denied: dynamodb:Scan on "
      "arn:aws:dynamodb:us-east-1:123456789012:table/fraud-ci-prediction-log (dynamodb.Scan",
      "s3:PutObject on arn:aws:s3:::fraud-ci-123456789012-us-east-1/models/latest.json (only training publishes"]),
    (api_alarms_notify_elsewhere_or_not_at_all, verify_ecs_api, ["--no-functional"],
     ["notifies ['arn:aws:sns:us-east-1:123456789012:someone-else'], not the stack's alarm topic",
      "alarm fraud-ci-api-p99-latency has its actions disabled"]),
    (glue_alarms_select_what_nothing_publishes, verify_glue_job, [],
     ["dimensions (what the training job publishes): expected [{'Name': 'ModelName', 'Value': 'fraud-detection'}], "
      "got [{'Name': 'ModelName', 'Value': 'fraud-model'}]",
      "no CloudWatch alarm on AWS/Events TriggeredRules for fraud-ci-train-failed",
      "no alarm on FraudDetection/DriftFound"]),
    (bucket_without_tls_policy_or_versioning, verify_end_to_end, ["--no-functional"],
     ["FAIL  e2e: bucket policy denies requests without TLS", "not blocked: ['BlockPublicPolicy']"]),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "module", "extra", "messages"), CASES, ids=[c[0].__name__ for c in CASES])
def test_check_fails_on_broken_variant(deploy_stack, capsys, mutate, module, extra, messages):
    deployed = deploy_stack(mutate)
    capsys.readouterr()
    rc = module.main(deployed.argv_for(module, *extra))
    out = capsys.readouterr().out
    assert rc == 1, out
    for message in messages:
        assert message in out, f"missing {message!r} in:\n{out}"
    assert out.rstrip().splitlines()[-1].startswith("FAIL"), out


def test_bootstrap_deploys_no_function(emulator, artifacts, tmp_path, monkeypatch):
    """First deployment phase: no Lambda and no notification yet; the checks say so instead of passing."""
    import importlib.util
    import sys

    import boto3

    from tools.emulator.provisioner import EmulatorProvisioner

    # this folder's conftest by path: a bare `import conftest` finds tests/conftest.py in a whole-suite run
    spec = importlib.util.spec_from_file_location("infra_conftest", Path(__file__).with_name("conftest.py"))
    conftest = sys.modules.setdefault("infra_conftest", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(conftest)

    conftest.reset(emulator)
    session = boto3.Session(region_name="us-east-1")
    ec2 = session.client("ec2", endpoint_url=emulator)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    cert = session.client("acm", endpoint_url=emulator).request_certificate(DomainName="x.example.com")[
        "CertificateArn"
    ]
    outputs = EmulatorProvisioner(session, emulator, "us-east-1").provision(
        conftest.STACK,
        {"EnvName": conftest.ENV, "VpcId": vpc, "PrivateSubnetIds": subnet, "PublicSubnetIds": subnet,
         "CertificateArn": cert, "ApiDomainName": conftest.API_DOMAIN},
    )  # fmt: skip
    assert "RetrainFunctionName" not in outputs
    s3 = session.client("s3", endpoint_url=emulator)
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=outputs["BucketName"])
    args = ["--env", conftest.ENV, "--endpoint-url", emulator]
    assert verify_lambda_function.main(args) == 1


# ----------------------------------------------------------------------------- the Lambda's code
def _moto_api(url: str, path: str, body: dict) -> None:
    req = urllib.request.Request(  # noqa: S310 - the local emulator
        f"{url}/moto-api/{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310


def _lambda_out(deployed, capsys, *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = verify_lambda_function.main(deployed.argv_for(verify_lambda_function, *extra))
    return rc, capsys.readouterr().out


def test_lambda_zip_without_its_dependencies(deploy_stack, artifacts, tmp_path, capsys):
    """The zip the seed deployed (handler + library, no pydantic): the function could not even import."""
    from infra import deploy as deploy_mod

    bare = deploy_mod.build_lambda_zip(tmp_path / "bare", with_dependencies=False)
    deployed = deploy_stack(code=dataclasses.replace(artifacts, lambda_zip=bare))
    rc, out = _lambda_out(deployed, capsys)
    assert rc == 1, out
    assert "pydantic is not in the package (no pydantic-*.dist-info)" in out, out
    assert "pydantic_settings (imported when the handler loads) is not in the package" in out, out
    # what it does hold is still the deployed code: those checks pass
    assert "PASS  lambda: function runs the uploaded" in out, out


def test_lambda_probe_answer_must_be_the_handlers(emulator, deploy_stack, capsys):
    """Invoke with the probe: an answer that is not the handler's "ignored" for that key fails.

    moto's simple Lambda backend answers without running code (it echoes the event, or returns a queued
    answer): the stand-in for a function whose code is not ours or misbehaves.
    """
    _moto_api(emulator, "config", {"lambda": {"use_docker": False}})
    try:
        deployed = deploy_stack()
        rc, out = _lambda_out(deployed, capsys, "--runtime-checks", "always")
        assert rc == 1, out
        assert "FAIL  lambda: invoke the function with a probe event" in out, out
        assert "expected one file outcome" in out, out  # the echoed event is no answer
        started = {"files": [{"key": "landing/x.csv", "status": "accepted"}], "launch": {"status": "started"}}
        _moto_api(emulator, "static/lambda-simple/response", {"results": [json.dumps(started)]})
        rc, out = _lambda_out(deployed, capsys, "--runtime-checks", "always")
        assert rc == 1 and "file outcome key: expected 'verify/lambda-probe/" in out, out
    finally:
        _moto_api(emulator, "config", {"lambda": {"use_docker": True}})


# ----------------------------------------------------------------------------- alarms
def test_alarm_email_without_subscription(deploy_stack, capsys):
    """An alarm e-mail was given, but the topic has no subscription for it: no alarm reaches anyone."""

    def no_subscription(t: dict) -> None:
        del t["Resources"]["AlarmEmailSubscription"]

    deployed = deploy_stack(no_subscription, alarm_email="oncall@example.com")
    capsys.readouterr()
    rc = verify_glue_job.main(deployed.argv("--alarm-email", "oncall@example.com"))
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "FAIL  glue: alarm topic delivers to oncall@example.com - no e-mail subscription of" in out, out


# ----------------------------------------------------------------------------- ECS tasks
@pytest.mark.parametrize(
    ("running", "targets", "messages"),
    [
        ("0", [], ["running 0 of 2 desired", "rolloutState IN_PROGRESS",
                   "no healthy target in the target group (targets: none registered)"]),
        ("1", ["10.0.0.10"], ["running 1 of 2 desired", "rolloutState IN_PROGRESS"]),
    ],
    ids=["crash-loop", "one-of-two"],
)  # fmt: skip
def test_ecs_runtime_checks_fail_when_tasks_do_not_run(deploy_stack, capsys, monkeypatch, running, targets, messages):
    """The state ECS reports for a crash-looping / half-started service; the old check (desiredCount) passed."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", running)  # the in-process emulator reads it per service
    deployed = deploy_stack()
    if targets:
        elb = deployed.session.client("elbv2", endpoint_url=deployed.url)
        elb.register_targets(
            TargetGroupArn=deployed.outputs["TargetGroupArn"], Targets=[{"Id": t, "Port": 8000} for t in targets]
        )
    capsys.readouterr()
    rc = verify_ecs_api.main(deployed.argv("--no-functional", "--runtime-checks", "always"))
    out = capsys.readouterr().out
    assert rc == 1, out
    for message in messages:
        assert message in out, f"missing {message!r} in:\n{out}"


def test_ecs_runtime_checks_pass_when_tasks_run(deploy_stack, capsys, monkeypatch):
    """The control for the case above: all tasks running, the deployment complete, a target healthy."""
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")
    deployed = deploy_stack(alarm_email="oncall@example.com")
    elb = deployed.session.client("elbv2", endpoint_url=deployed.url)
    elb.register_targets(TargetGroupArn=deployed.outputs["TargetGroupArn"], Targets=[{"Id": "10.0.0.10", "Port": 8000}])
    capsys.readouterr()
    rc = verify_ecs_api.main(
        deployed.argv("--no-functional", "--runtime-checks", "always", "--alarm-email", "oncall@example.com")
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "SKIP" not in out, out
    assert "PASS  api: service keeps its tasks running (runningCount >= 1 and = desiredCount) - 2 of 2" in out
    assert "PASS  api: target group has a healthy target - 1 of 1 healthy" in out
    assert "PASS  api: alarm topic delivers to oncall@example.com" in out
