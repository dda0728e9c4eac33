"""The template itself: cfn-lint clean, parameterised by environment, and the evaluator the IAM check uses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from verify_iam_roles import PolicySet

from infra.cfn import Resolver, creation_order, load_template, parameter_values

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"
REQUIRED = {"VpcId": "vpc-1", "PrivateSubnetIds": "subnet-1", "PublicSubnetIds": "subnet-2",
            "CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/x"}  # fmt: skip


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
