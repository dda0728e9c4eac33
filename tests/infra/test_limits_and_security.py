"""Documented limits and the security settings of the template, evaluated for the parameters a user gives.

The template is resolved by the emulator's evaluator (``tools.emulator.cfn``: the same intrinsics and
``Rules`` CloudFormation evaluates), so each test asks what a deploy with given parameters would
create, not what the YAML says in one place.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools

import pytest

from tools.emulator.cfn import Resolver, load_template, parameter_values

ACCOUNT, REGION = "123456789012", "eu-west-1"
REQUIRED = {"VpcId": "vpc-1", "PrivateSubnetIds": "subnet-1", "PublicSubnetIds": "subnet-2",
            "CertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/x", "ApiDomainName": "api.example.com",
            "EnvName": "dev", "LambdaCodeVersion": "v1"}  # fmt: skip
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234"
BUCKET = f"fraud-dev-{ACCOUNT}-{REGION}"

# Valid Fargate task sizes (Linux), "Task CPU and memory" in the Amazon ECS Developer Guide:
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
# https://docs.aws.amazon.com/AmazonECS/latest/userguide/task-cpu-memory-error.html
FARGATE_MEMORY_MIB = {
    256: {512, 1024, 2048},
    512: {1024, 2048, 3072, 4096},
    1024: set(range(2048, 8192 + 1, 1024)),
    2048: set(range(4096, 16384 + 1, 1024)),
    4096: set(range(8192, 30720 + 1, 1024)),
    8192: set(range(16384, 61440 + 1, 4096)),
    16384: set(range(32768, 122880 + 1, 8192)),
}


@functools.cache
def template() -> dict:
    return load_template()  # read-only here: the resolver never changes it


def resolver(**params: str) -> Resolver:
    t = template()
    r = Resolver(t, parameter_values(t, {**REQUIRED, **params}), account_id=ACCOUNT, region=REGION,
                 stack_name="fraud-dev")  # fmt: skip
    r.attrs["DataKey"] = {"Arn": KEY_ARN}
    r.refs["DataBucket"] = BUCKET
    return r


def props(r: Resolver, logical_id: str) -> dict:
    return r.resolve(r.template["Resources"][logical_id].get("Properties", {}))


def prop(r: Resolver, logical_id: str, name: str):
    """One property, resolved (the others may refer to resources these tests do not stand in for)."""
    return r.resolve(r.template["Resources"][logical_id]["Properties"][name])


# ------------------------------------------------------------------------------------ limits
def test_every_allowed_cpu_memory_pair_the_rules_accept_is_a_valid_fargate_size():
    t = load_template()["Parameters"]
    cpus, memories = t["ApiCpu"]["AllowedValues"], t["ApiMemory"]["AllowedValues"]
    accepted = {
        (c, m) for c, m in itertools.product(cpus, memories) if not resolver(ApiCpu=c, ApiMemory=m).failed_rules()
    }
    assert accepted, "no CPU / memory pair passes the template's rules"
    invalid = [(c, m) for c, m in accepted if int(m) not in FARGATE_MEMORY_MIB[int(c)]]
    assert invalid == [], f"the rules let through pairs Fargate refuses: {invalid}"
    for cpu in cpus:  # every CPU value has at least one memory value it may run with
        assert any(c == cpu for c, _ in accepted), cpu
    default = (t["ApiCpu"]["Default"], t["ApiMemory"]["Default"])
    assert default in accepted


def test_reserved_concurrency_is_optional_and_off_by_default():
    def reserved(r: Resolver):
        return r.resolve(
            {"x": r.template["Resources"]["RetrainFunction"]["Properties"]["ReservedConcurrentExecutions"]}
        )

    assert reserved(resolver()) == {}  # AWS::NoValue: the property is left out
    assert reserved(resolver(RetrainReservedConcurrency="2")) == {"x": "2"}


# ------------------------------------------------------------------------------------ exposure
def test_waf_is_on_by_default_and_an_open_alb_without_it_is_refused():
    r = resolver()
    assert r.resource_enabled("ApiWebAcl") and r.resource_enabled("ApiWebAclAssociation")
    assert r.failed_rules() == []
    assert any("EnableWaf" in f for f in resolver(EnableWaf="false").failed_rules())
    assert resolver(EnableWaf="false", AllowedIngressCidr="10.0.0.0/8").failed_rules() == []
    assert resolver(EnableWaf="false", LoadBalancerScheme="internal").failed_rules() == []


def test_api_url_is_its_own_host_name_with_an_optional_alias():
    r = resolver()
    r.attrs["ApiLoadBalancer"] = {"DNSName": "fraud-dev-alb-1.elb.amazonaws.com", "CanonicalHostedZoneID": "Z35S"}
    outputs = {k: r.resolve(v["Value"]) for k, v in r.template["Outputs"].items() if k == "ApiUrl"}
    assert outputs == {"ApiUrl": "https://api.example.com"}
    assert not r.resource_enabled("ApiDnsRecord")
    r = resolver(HostedZoneId="Z0123")
    r.attrs["ApiLoadBalancer"] = {"DNSName": "fraud-dev-alb-1.elb.amazonaws.com", "CanonicalHostedZoneID": "Z35S"}
    record = props(r, "ApiDnsRecord")
    assert r.resource_enabled("ApiDnsRecord") and record["Name"] == "api.example.com" and record["Type"] == "A"
    assert record["AliasTarget"]["DNSName"] == "fraud-dev-alb-1.elb.amazonaws.com"


# ------------------------------------------------------------------------------------ retention
def test_resources_holding_data_survive_deletion_but_not_a_failed_first_create():
    resources = load_template()["Resources"]
    holding_data = ["DataBucket", "IdempotencyTable", "PredictionLogTable", "CardHistoryTable",
                    "CardHashKeySecret", "ModelSigningKeySecret", "ApiRepository", "DataKey"]  # fmt: skip
    for name in holding_data:
        assert resources[name].get("DeletionPolicy") == "RetainExceptOnCreate", name
        assert resources[name].get("UpdateReplacePolicy") == "Retain", name
    # every stateful type in the template is in that list
    stateful = ("AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::ECR::Repository")
    assert {n for n, r in resources.items() if r["Type"] in stateful} <= set(holding_data)


def test_raw_and_quarantine_expire_only_when_asked():
    def raw_rules(r: Resolver) -> dict[str, str]:
        rules = prop(r, "DataBucket", "LifecycleConfiguration")["Rules"]
        return {x["Prefix"]: x["ExpirationInDays"] for x in rules if "ExpirationInDays" in x}

    assert raw_rules(resolver()) == {}
    assert raw_rules(resolver(RawRetentionDays="400")) == {"raw/": "400", "quarantine/": "400"}


# ------------------------------------------------------------------------------------ the data key
DATA_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:CreateGrant")  # fmt: skip


def _grants(statement: dict, action: str) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions)


def test_data_key_is_used_only_by_the_training_and_intake_roles_through_s3():
    r = resolver()
    roles = {prop(r, logical, "RoleName") for logical in ("GlueJobRole", "RetrainFunctionRole")}
    role_arns = {f"arn:aws:iam::{ACCOUNT}:role/{name}" for name in roles}
    statements = props(r, "DataKey")["KeyPolicy"]["Statement"]
    using = [st for st in statements if st["Effect"] == "Allow" and any(_grants(st, a) for a in DATA_ACTIONS)]
    assert len(using) == 1, using
    condition = using[0]["Condition"]
    assert set(condition["ArnEquals"]["aws:PrincipalArn"]) == role_arns
    assert condition["StringEquals"]["kms:ViaService"] == f"s3.{REGION}.amazonaws.com"
    assert not any(_grants(using[0], a) for a in ("kms:Encrypt", "kms:CreateGrant", "kms:ReEncryptTo"))
    # the roles' own side of it: exactly those two roles get an IAM policy for the key
    policies = [x["Properties"] for x in r.template["Resources"].values() if x["Type"] == "AWS::IAM::RolePolicy"]
    assert {p["RoleName"]["Ref"] for p in policies} == {"GlueJobRole", "RetrainFunctionRole"}


def test_bucket_refuses_writes_to_raw_and_quarantine_without_the_data_key():
    statements = props(resolver(), "DataBucketPolicy")["PolicyDocument"]["Statement"]
    deny = [st for st in statements if st.get("Sid") == "RawAndQuarantineUnderDataKey"]
    assert len(deny) == 1 and deny[0]["Effect"] == "Deny" and deny[0]["Action"] == "s3:PutObject"
    assert set(deny[0]["Resource"]) == {f"arn:aws:s3:::{BUCKET}/raw/*", f"arn:aws:s3:::{BUCKET}/quarantine/*"}
    assert deny[0]["Condition"] == {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": KEY_ARN}}


def test_writers_are_given_the_data_key():
    """The function's environment and the job's arguments carry the key into Settings.data_kms_key_arn."""
    from fraud_detection.settings import Settings

    r = resolver()
    r.refs.update(IdempotencyTable="t", TrainJob="fraud-train-dev", CardHashKeySecret="s", ModelSigningKeySecret="m")
    env = prop(r, "RetrainFunction", "Environment")["Variables"]
    assert env["FRAUD_DATA_KMS_KEY_ARN"] == KEY_ARN
    assert prop(r, "TrainJob", "DefaultArguments")["--data_kms_key_arn"] == KEY_ARN
    assert "data_kms_key_arn" in Settings.model_fields and Settings.model_config["env_prefix"] == "FRAUD_"
    import glue.train_job

    assert "data_kms_key_arn" in glue.train_job.OPTIONAL


@pytest.mark.parametrize("secret", ["CardHashKeySecret", "ModelSigningKeySecret"])
def test_card_hash_and_signing_keys_are_retained(secret):
    assert load_template()["Resources"][secret]["DeletionPolicy"] in ("Retain", "RetainExceptOnCreate")
