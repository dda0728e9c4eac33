"""The template itself: cfn-lint clean, parameterised by environment, and the evaluator the IAM check uses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from iam_policy import PolicySet

from tools.emulator.cfn import Resolver, creation_order, load_template, parameter_values

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
REQUIRED = {"VpcId": "vpc-1", "PrivateSubnetIds": "subnet-1", "PublicSubnetIds": "subnet-2",
            "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x",
            "ApiDomainName": "api.example.com"}  # fmt: skip


def test_cfn_lint_clean():
    exe = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which("cfn-lint")
    assert exe, "cfn-lint is not installed"
    proc = subprocess.run([exe, str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_wildcard_action_in_any_role_policy():
    template = load_template()
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                assert not [a for a in actions if "*" in a], f"{name}: {actions}"
                assert "NotAction" not in st


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_names_derive_from_environment(env):
    t = load_template()
    r = Resolver(t, parameter_values(t, {**REQUIRED, "EnvName": env, "LambdaCodeVersion": "v1"}),
                 account_id="123456789012", region="eu-west-1", stack_name=f"fraud-{env}")  # fmt: skip
    r.refs["CardHashKeySecret"] = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x"
    r.refs["ModelSigningKeySecret"] = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:m"
    r.attrs["DataKey"] = {"Arn": "arn:aws:kms:eu-west-1:123456789012:key/k"}
    job = t["Resources"]["TrainJob"]["Properties"]
    assert r.resolve(job["Name"]) == f"fraud-train-{env}"
    assert r.resolve(job["GlueVersion"]) == "5.0"
    assert r.resolve(job["DefaultArguments"])["--store_uri"] == f"s3://fraud-{env}-123456789012-eu-west-1"
    assert r.resolve(t["Resources"]["DataBucket"]["Properties"]["BucketName"]) == f"fraud-{env}-123456789012-eu-west-1"


def test_bootstrap_leaves_out_the_function_only():
    t = load_template()
    r = Resolver(t, parameter_values(t, REQUIRED), account_id="1" * 12, region="us-east-1", stack_name="s")
    order = creation_order(t, r.resource_enabled)
    assert "RetrainFunction" not in order and "RetrainInvokePermission" not in order
    assert {"DataBucket", "TrainJob", "ApiService", "ApiScalableTarget"} <= set(order)


# ---------------------------------------------------------------- the IAM evaluator (no emulator needed)
POLICY = {
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/models/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
         "Condition": {"StringLike": {"s3:prefix": ["models/*"]}}},
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": "FraudDetection"}}},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/models/secret*"},
    ]
}  # fmt: skip


def test_evaluator_resources_conditions_and_deny():
    p = PolicySet({"p": POLICY})
    assert p.allows("s3:GetObject", "arn:aws:s3:::b/models/v1/model.joblib")
    assert p.allows("S3:getobject", "arn:aws:s3:::b/models/latest.json")  # actions are case-insensitive
    assert not p.allows("s3:GetObject", "arn:aws:s3:::b/raw/x.csv")
    assert not p.allows("s3:GetObject", "arn:aws:s3:::b/models/secret.txt")  # explicit deny wins
    assert p.allows("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "models/v1/"})
    assert not p.allows("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "raw/"})
    assert not p.allows("s3:ListBucket", "arn:aws:s3:::b")  # condition key absent
    assert p.allows("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "FraudDetection"})
    assert not p.allows("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Other"})
    assert p.wildcard_actions() == []
    assert p.unscoped_resources() == []


def test_evaluator_flags_wildcards_and_not_action():
    p = PolicySet(
        {
            "a": {"Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"}]},
            "b": {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]},
        }
    )
    assert p.allows("s3:GetObjectAcl", "arn:aws:s3:::b/x")
    assert p.allows("dynamodb:DeleteTable", "arn:aws:dynamodb:us-east-1:1:table/t")  # NotAction grants the rest
    assert not p.allows("iam:PassRole", "*")
    flagged = " ".join(p.wildcard_actions())
    assert "s3:Get*" in flagged and "NotAction iam:*" in flagged
    assert p.unscoped_resources()


# ---------------------------------------------------------------- the daily live-drift job
ACCOUNT, REGION = "123456789012", "eu-west-1"
BUCKET_ARN = f"arn:aws:s3:::fraud-dev-{ACCOUNT}-{REGION}"
TABLES = {name: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/fraud-dev-{name}"
          for name in ("prediction-log", "card-history", "idempotency")}  # fmt: skip


def _resolver(t: dict) -> Resolver:
    r = Resolver(t, parameter_values(t, {**REQUIRED, "EnvName": "dev", "LambdaCodeVersion": "v1"}),
                 account_id=ACCOUNT, region=REGION, stack_name="fraud-dev")  # fmt: skip
    r.refs["CardHashKeySecret"] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:x"
    r.refs["ModelSigningKeySecret"] = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:m"
    r.attrs["DataKey"] = {"Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"}
    r.refs["PredictionLogTable"] = "fraud-dev-prediction-log"
    for logical, name in (("PredictionLogTable", "prediction-log"), ("CardHistoryTable", "card-history"),
                          ("IdempotencyTable", "idempotency")):  # fmt: skip
        r.attrs[logical] = {"Arn": TABLES[name]}
    r.attrs["LiveDriftJobRole"] = {"Arn": f"arn:aws:iam::{ACCOUNT}:role/fraud-dev-live-drift-job"}
    return r


def test_live_drift_job_runs_its_script_daily_on_the_prediction_log():
    t = load_template()
    r = _resolver(t)
    job = r.resolve(t["Resources"]["LiveDriftJob"]["Properties"])
    assert job["Name"] == "fraud-live-drift-dev" and job["GlueVersion"] == "5.0"
    assert job["Command"]["ScriptLocation"] == f"s3://fraud-dev-{ACCOUNT}-{REGION}/code/glue/live_drift_job.py"
    args = job["DefaultArguments"]
    assert args["--extra-py-files"] == f"s3://fraud-dev-{ACCOUNT}-{REGION}/code/glue/fraud_detection.zip"
    assert args["--store_uri"] == f"s3://fraud-dev-{ACCOUNT}-{REGION}" and args["--kv_backend"] == "dynamodb"
    assert args["--prediction_log_table"] == "fraud-dev-prediction-log" and args["--hours"] == "24"
    assert args["--aws_region"] == REGION and args["--enable-glue-datacatalog"] == "true"
    assert job["ExecutionProperty"]["MaxConcurrentRuns"] == 1 and 0 < job["Timeout"] <= 120

    trigger = t["Resources"]["DailyLiveDriftTrigger"]["Properties"]
    assert trigger["Type"] == "SCHEDULED" and trigger["StartOnCreation"] is True
    assert trigger["Actions"] == [{"JobName": {"Ref": "LiveDriftJob"}}]
    minute, hour, day, month, weekday, year = trigger["Schedule"].removeprefix("cron(").removesuffix(")").split()
    assert minute.isdigit() and hour.isdigit() and (day, month, weekday, year) == ("*", "*", "?", "*")  # daily

    # the deploy script uploads the script where the job looks for it
    from infra.deploy import CODE_KEYS

    assert CODE_KEYS["live_drift_job.py"] == "code/glue/live_drift_job.py"


def test_live_drift_role_may_scan_the_prediction_log_and_little_else():
    t = load_template()
    r = _resolver(t)
    role = r.resolve(t["Resources"]["LiveDriftJobRole"]["Properties"])
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "glue.amazonaws.com"}
    assert t["Resources"]["LiveDriftJob"]["Properties"]["Role"] == {"Fn::GetAtt": ["LiveDriftJobRole", "Arn"]}
    p = PolicySet({x["PolicyName"]: x["PolicyDocument"] for x in role["Policies"]})
    can = [
        ("dynamodb:Scan", TABLES["prediction-log"], {}),
        ("s3:GetObject", f"{BUCKET_ARN}/code/glue/live_drift_job.py", {}),
        ("s3:GetObject", f"{BUCKET_ARN}/models/latest.json", {}),
        ("s3:GetObject", f"{BUCKET_ARN}/features/year=2019/month=8/part-0.parquet", {}),
        ("s3:PutObject", f"{BUCKET_ARN}/reports/drift/live-reference/v1.json", {}),
        ("s3:ListBucket", BUCKET_ARN, {"s3:prefix": "reports/drift/live-reference/v1.json"}),
        ("s3:ListBucket", BUCKET_ARN, {}),  # unconditioned: HeadObject on a missing key must answer 404
        ("glue:GetDatabase", f"arn:aws:glue:{REGION}:{ACCOUNT}:database/global_temp", {}),
        ("glue:GetTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:table/fraud/features", {}),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "FraudDetection"}),
    ]
    cannot = [
        ("dynamodb:PutItem", TABLES["prediction-log"], {}),
        ("dynamodb:Query", TABLES["card-history"], {}),
        ("dynamodb:Scan", TABLES["idempotency"], {}),
        ("s3:PutObject", f"{BUCKET_ARN}/models/latest.json", {}),
        ("s3:GetObject", f"{BUCKET_ARN}/raw/a.csv", {}),
        ("s3:DeleteObject", f"{BUCKET_ARN}/reports/drift/live-reference/v1.json", {}),
        ("glue:CreateTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:table/fraud/features", {}),
        ("secretsmanager:GetSecretValue", r.refs["CardHashKeySecret"], {}),
        ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Other"}),
    ]
    assert [c for c in can if not p.allows(*c)] == []
    assert [c for c in cannot if p.allows(*c)] == []
    assert p.wildcard_actions() == [] and p.unscoped_resources() == []


def test_drift_found_of_both_jobs_feeds_the_drift_alarm():
    """Namespace, metric and the one dimension the code publishes are the ones the alarm selects."""
    from fraud_detection import monitoring
    from fraud_detection.settings import Settings

    t = load_template()
    res = t["Resources"]
    alarm = res["DataDriftAlarm"]["Properties"]
    assert alarm["Namespace"] == monitoring.NAMESPACE and alarm["MetricName"] == "DriftFound"
    assert alarm["Dimensions"] == [{"Name": monitoring.DIMENSION, "Value": {"Ref": "ModelName"}}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert res["ModelQualityAlarm"]["Properties"]["Dimensions"] == alarm["Dimensions"]
    for job in ("LiveDriftJob", "TrainJob"):  # both publish with the stack's model name and region
        args = res[job]["Properties"]["DefaultArguments"]
        assert args["--model_name"] == {"Ref": "ModelName"} and args["--aws_region"] == {"Ref": "AWS::Region"}, job
    assert t["Parameters"]["ModelName"]["Default"] == Settings().registered_model_name

    rule = res["LiveDriftJobFailedRule"]["Properties"]
    assert rule["EventPattern"]["detail"]["jobName"] == [{"Ref": "LiveDriftJob"}]
    assert rule["Targets"] == [{"Id": "alarm-topic", "Arn": {"Ref": "AlarmTopic"}}]
    allowed = res["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]["ArnEquals"]
    assert {"Fn::GetAtt": ["LiveDriftJobFailedRule", "Arn"]} in allowed["aws:SourceArn"]
