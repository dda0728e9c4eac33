"""Each deployment check fails, with a message naming the problem, when its part is misconfigured.

Every case deploys the template with one deliberate defect into a fresh emulator and runs the check
that owns that part.
"""

from __future__ import annotations

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
     ["health check path: expected '/ready', got '/'"]),
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
      "dimensions (the metric's, from --model_name): expected [{'Name': 'ModelName', 'Value': 'some-other-model'}]"]),
    (iam_live_drift_cannot_scan_but_writes_models, verify_iam_roles, [],
     ["FAIL  iam: fraud-ci-live-drift-job: can make every call its component makes - denied: dynamodb:Scan on "
      "arn:aws:dynamodb:us-east-1:123456789012:table/fraud-ci-prediction-log (dynamodb.Scan",
      "s3:PutObject on arn:aws:s3:::fraud-ci-123456789012-us-east-1/models/latest.json (only training publishes"]),
    (bucket_without_tls_policy_or_versioning, verify_end_to_end, ["--no-functional"],
     ["FAIL  e2e: bucket policy denies requests without TLS", "not blocked: ['BlockPublicPolicy']"]),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "module", "extra", "messages"), CASES, ids=[c[0].__name__ for c in CASES])
def test_check_fails_on_broken_variant(deploy_stack, capsys, mutate, module, extra, messages):
    deployed = deploy_stack(mutate)
    capsys.readouterr()
    rc = module.main(deployed.argv(*extra))
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

    from infra.emulator import EmulatorProvisioner

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
         "CertificateArn": cert},
    )  # fmt: skip
    assert "RetrainFunctionName" not in outputs
    s3 = session.client("s3", endpoint_url=emulator)
    assert "LambdaFunctionConfigurations" not in s3.get_bucket_notification_configuration(Bucket=outputs["BucketName"])
    args = ["--env", conftest.ENV, "--endpoint-url", emulator]
    assert verify_lambda_function.main(args) == 1
