"""``CloudFormationProvisioner`` (the account path of ``fraud deploy``) against moto's CloudFormation over HTTP.

- Documented limits: CreateStack / UpdateStack take a ``TemplateBody`` of at most 51,200 bytes and a
  ``TemplateURL`` object of at most 1 MB. moto enforces neither, so a botocore event hook records what
  the deploy sends and the test checks it against the limits, then reads the uploaded object back.
- Recovery: moto's CloudFormation never reaches ROLLBACK_COMPLETE or the other failed states by itself
  (a failing resource makes its CreateStack answer 500 instead). The emulator runs in this process, so
  the test puts the stack into the state AWS would leave it in (``_set_status``); every call the deploy
  then makes (describe, delete, create, wait) goes over HTTP to the emulator.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from infra import deploy
from infra.deploy import TEMPLATE_BODY_LIMIT, TEMPLATE_URL_LIMIT, CloudFormationProvisioner, DeployError
from tools.emulator.cfn import load_template

STACK = "fraud-cfn"
REGION = "us-east-1"
SMALL_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  EnvName: {Type: String}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "fraud-${EnvName}-q"
Outputs:
  BucketName: {Value: !GetAtt Queue.QueueName}
  ApiRepositoryUri: {Value: "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-api"}
"""


class CallRecorder:
    """Every CloudFormation call the session's clients make: (operation, parameters as sent)."""

    def __init__(self, session: boto3.Session) -> None:
        self.calls: list[tuple[str, dict]] = []
        session.events.register("provide-client-params.cloudformation.*", self._record)

    def _record(self, params: dict, model, **_) -> None:
        self.calls.append((model.name, dict(params)))

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls if not op.startswith("Describe")]

    def of(self, operation: str) -> list[dict]:
        return [params for op, params in self.calls if op == operation]


def reset(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - local emulator
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310


@pytest.fixture
def aws(emulator) -> Iterator[tuple[boto3.Session, CallRecorder]]:
    reset(emulator)
    session = boto3.Session(region_name=REGION)
    yield session, CallRecorder(session)


def _provisioner(session, emulator, template: Path = deploy.TEMPLATE) -> CloudFormationProvisioner:
    return CloudFormationProvisioner(
        session, REGION, "ci", endpoint_url=emulator, template_path=template, wait_delay_s=1, wait_max_attempts=5
    )


def _small(tmp_path: Path, text: str = SMALL_TEMPLATE) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(text)
    return path


def _set_status(stack_name: str, status: str) -> None:
    """Put the emulator's stack into ``status`` (the state AWS leaves; moto cannot reach it itself)."""
    from moto.cloudformation.models import cloudformation_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    stacks = [s for s in cloudformation_backends[DEFAULT_ACCOUNT_ID][REGION].stacks.values() if s.name == stack_name]
    assert len(stacks) == 1, stacks
    stacks[0].status = status


def _template_parameters(session, emulator) -> dict[str, str]:
    ec2 = session.client("ec2", endpoint_url=emulator)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{'ab'[i]}")["Subnet"][
            "SubnetId"
        ]
        for i in range(2)
    ]
    cert = session.client("acm", endpoint_url=emulator).request_certificate(DomainName="api.example.com")
    given = {"EnvName": "ci", "VpcId": vpc, "PrivateSubnetIds": ",".join(subnets),
             "PublicSubnetIds": ",".join(subnets), "CertificateArn": cert["CertificateArn"],
             "ApiDomainName": "api.example.com"}  # fmt: skip
    # Every parameter given at create: moto's UpdateStack fails (KeyError, HTTP 500) on UsePreviousValue for a
    # parameter that took its default at create, which AWS accepts and the deploy sends for any not given.
    defaults = {k: str(v["Default"]) for k, v in load_template()["Parameters"].items() if "Default" in v}
    return {**defaults, **given}


# ---------------------------------------------------------------------------------------- limits
def test_stack_template_respects_the_documented_size_limits(aws, emulator):
    session, recorder = aws
    provisioner = _provisioner(session, emulator)
    params = _template_parameters(session, emulator)
    outputs = provisioner.apply(STACK, params)  # create
    provisioner.apply(STACK, {**params, "LambdaCodeVersion": "v1"})  # update
    assert outputs["BucketName"]

    sent = recorder.of("CreateStack") + recorder.of("UpdateStack")
    assert [op for op in recorder.ops() if op in ("CreateStack", "UpdateStack")] == ["CreateStack", "UpdateStack"]
    s3 = session.client("s3", endpoint_url=emulator)
    template = deploy.TEMPLATE.read_bytes()
    for params in sent:
        if "TemplateBody" in params:
            assert len(params["TemplateBody"].encode()) <= TEMPLATE_BODY_LIMIT, "TemplateBody over 51,200 bytes"
            continue
        url = params["TemplateURL"]
        bucket, key = url.removeprefix("https://").split(".s3.", 1)[0], url.split(".amazonaws.com/", 1)[1]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == template and len(body) <= TEMPLATE_URL_LIMIT, url


def test_deployment_bucket_is_versioned_encrypted_private_and_tls_only(aws, emulator, tmp_path):
    session, _ = aws
    provisioner = _provisioner(session, emulator, _small(tmp_path))
    provisioner.apply(STACK, {"EnvName": "ci"})
    bucket = provisioner.deployment_bucket
    s3 = session.client("s3", endpoint_url=emulator)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4, block
    statements = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert any(st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for st in statements), statements  # fmt: skip


def test_template_over_the_url_limit_is_refused_before_any_call(aws, emulator, tmp_path):
    session, recorder = aws
    big = _small(tmp_path, SMALL_TEMPLATE + "#" * (TEMPLATE_URL_LIMIT + 1) + "\n")
    with pytest.raises(DeployError, match="nested stacks"):
        _provisioner(session, emulator, big).apply(STACK, {"EnvName": "ci"})
    assert "CreateStack" not in recorder.ops()


# ---------------------------------------------------------------------------------------- recovery
@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "REVIEW_IN_PROGRESS"])
def test_stack_without_resources_is_deleted_and_created_again(aws, emulator, tmp_path, capsys, status):
    session, recorder = aws
    provisioner = _provisioner(session, emulator, _small(tmp_path))
    provisioner.apply(STACK, {"EnvName": "ci"})
    first_id = session.client("cloudformation", endpoint_url=emulator).describe_stacks(StackName=STACK)["Stacks"][0]
    _set_status(STACK, status)  # ROLLBACK_COMPLETE: what AWS leaves after a failed first create
    recorder.calls.clear()

    assert provisioner.current_outputs(STACK) is None  # deploy() bootstraps again
    outputs = provisioner.apply(STACK, {"EnvName": "ci"})

    assert recorder.ops() == ["DeleteStack", "CreateStack"], recorder.ops()
    stack = session.client("cloudformation", endpoint_url=emulator).describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE" and stack["StackId"] != first_id["StackId"]
    assert outputs["BucketName"] == "fraud-ci-q"
    assert status in capsys.readouterr().out


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        ("ROLLBACK_FAILED", "delete-stack"),
        ("DELETE_FAILED", "delete-stack"),
        ("UPDATE_ROLLBACK_FAILED", "continue-update-rollback"),
        ("UPDATE_IN_PROGRESS", "another operation is running"),
    ],
)
def test_other_failed_states_stop_with_the_state_and_what_to_do(aws, emulator, tmp_path, status, advice):
    session, recorder = aws
    provisioner = _provisioner(session, emulator, _small(tmp_path))
    provisioner.apply(STACK, {"EnvName": "ci"})
    _set_status(STACK, status)
    recorder.calls.clear()
    for attempt in (lambda: provisioner.current_outputs(STACK), lambda: provisioner.apply(STACK, {"EnvName": "ci"})):
        with pytest.raises(DeployError) as err:
            attempt()
        assert status in str(err.value) and advice in str(err.value) and STACK in str(err.value)
    assert recorder.ops() == [], "nothing may be changed on a stack in a failed state"


def test_failed_first_create_says_the_next_deploy_recreates(aws, emulator, tmp_path):
    session, _ = aws
    # CloudFormation fails a create asynchronously: CreateStack succeeds, the stack then rolls back.
    session.events.register(
        "after-call.cloudformation.CreateStack", lambda **_: _set_status(STACK, "ROLLBACK_COMPLETE")
    )
    with pytest.raises(DeployError) as err:
        _provisioner(session, emulator, _small(tmp_path)).apply(STACK, {"EnvName": "ci"})
    assert "ROLLBACK_COMPLETE" in str(err.value) and "next deploy deletes" in str(err.value)


def test_missing_outputs_are_named_not_a_key_error(aws, emulator, tmp_path):
    session, _ = aws
    no_bucket = SMALL_TEMPLATE.replace("  BucketName: {Value: !GetAtt Queue.QueueName}\n", "")
    with pytest.raises(DeployError, match="has no output BucketName"):
        _provisioner(session, emulator, _small(tmp_path, no_bucket)).apply(STACK, {"EnvName": "ci"})


def test_a_required_parameter_missing_names_its_option_before_any_call(aws, emulator):
    """E.g. a stack from before ApiDomainName existed: the update names --api-domain-name instead of failing."""
    session, recorder = aws
    params = _template_parameters(session, emulator)
    del params["ApiDomainName"]
    with pytest.raises(DeployError, match=r"ApiDomainName \(--api-domain-name\)"):
        _provisioner(session, emulator).apply(STACK, params)
    assert recorder.ops() == []
