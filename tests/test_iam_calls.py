"""The IAM call check (tests/aws_calls.py) can fail, and the resource policies the template writes admit
their publishers.

- A call the API really makes (recorded on the emulator) is allowed by the template and denied once the
  grant is removed from a copy of it.
- S3's answer to a missing key (403 without s3:ListBucket) is modelled.
- Spark's catalog and S3 calls and the AWS runtimes' calls (listed in tests/aws_calls.yaml) are allowed.
- The SNS alarm topic's policy admits every CloudWatch alarm and EventBridge rule of the stack that
  targets it, and nobody else.
"""

from __future__ import annotations

import copy
import uuid

import aws_calls
import pytest
from iam_calls import Call, actions_for, permissions
from iam_policy import service_principal
from template_stack import ACCOUNT, REGION, TemplateStack

from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore, S3Store

pytestmark = pytest.mark.aws_component("api")
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/fraud-dev-prediction-log"


def _statement(template: dict, role: str, sid: str) -> dict:
    statements = template["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    return next(s for s in statements if s["Sid"] == sid)


def _recorded_prediction_log_writes(aws_emulator: str, tmp_path) -> list[Call]:
    import boto3

    from fraud_detection.prediction_log import create_dynamo_table, prediction_log_from_settings
    from tests.tracking.drift_data import live_sample, prediction_records

    table = f"plog-{uuid.uuid4().hex[:8]}"
    create_dynamo_table(boto3.client("dynamodb", endpoint_url=aws_emulator, region_name=REGION), table)
    settings = Settings(store_uri=str(tmp_path), kv_backend="dynamodb", aws_endpoint_url=aws_emulator,
                        aws_region=REGION, prediction_log_table=table)  # fmt: skip
    start = len(aws_calls.RECORDER.calls)
    plog = prediction_log_from_settings(settings, LocalStore(tmp_path))  # what the API runs
    plog.append_many(prediction_records(live_sample(0, 30), prefix="iam-"))
    plog.close()
    return [r.call for r in aws_calls.RECORDER.since(start) if r.operation == "BatchWriteItem"]


def test_a_grant_removed_from_the_template_denies_the_recorded_call(aws_emulator, fake_aws_credentials, tmp_path):
    calls = _recorded_prediction_log_writes(aws_emulator, tmp_path)
    assert calls and {c.component for c in calls} == {"api"}
    assert [v.message() for v in aws_calls.check_calls(calls) if not v.allowed] == []

    template = copy.deepcopy(TemplateStack.load().template)
    statements = template["Resources"]["ApiTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    for st in statements:  # the grant removed wherever it is
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        st["Action"] = [a for a in actions if a != "dynamodb:BatchWriteItem"] or ["dynamodb:DescribeTable"]
    verdicts = aws_calls.check_calls(calls, TemplateStack.load(template=template))
    assert verdicts and not any(v.allowed for v in verdicts)
    message = verdicts[0].message()
    assert "api (ApiTaskRole) made dynamodb.BatchWriteItem" in message
    assert f"denied: dynamodb:BatchWriteItem on {TABLE_ARN} (implicit deny)" in message


def test_an_explicit_deny_in_a_copy_of_the_template_wins(aws_emulator, fake_aws_credentials, tmp_path):
    calls = _recorded_prediction_log_writes(aws_emulator, tmp_path)
    template = copy.deepcopy(TemplateStack.load().template)
    statements = template["Resources"]["ApiTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    statements.append({"Effect": "Deny", "Action": "dynamodb:BatchWriteItem", "Resource": "*"})
    verdicts = aws_calls.check_calls(calls, TemplateStack.load(template=template))
    assert "explicit deny" in verdicts[0].message()


def test_a_missing_key_answers_403_without_list_bucket(aws_emulator, fake_aws_credentials):
    """HeadObject of a missing key, recorded on the emulator (which answers 404 whatever the role)."""
    import boto3

    boto3.client("s3", endpoint_url=aws_emulator, region_name=REGION).create_bucket(Bucket="iam-missing-key")
    store = S3Store("s3://iam-missing-key", endpoint_url=aws_emulator, region=REGION)
    start = len(aws_calls.RECORDER.calls)
    assert store.head("models/latest.json") is None
    (models,) = [r.call for r in aws_calls.RECORDER.since(start) if r.operation == "HeadObject"]
    assert models.outcome == "404" and models.caller == "fraud_detection/storage.py:head"
    raw = Call("api", "s3", "HeadObject", {**models.params, "Key": "raw/a.csv"}, "404", models.caller)
    # S3Store.head lists exactly the key after a 403: the API role may list models/ but not raw/
    models_ok, raw_denied = aws_calls.check_calls([models, raw])
    assert models_ok.allowed
    assert "s3:ListBucket on arn:aws:s3:::fraud-dev-123456789012-us-east-1 {'s3:prefix': 'raw/a.csv'}" in (
        raw_denied.message()
    )
    # a caller that does not handle the 403 needs s3:ListBucket without a prefix condition for its 404
    plain = Call("api", "s3", "HeadObject", models.params, "404", "api/elsewhere.py:f")
    (verdict,) = aws_calls.check_calls([plain])
    assert "without it S3 answers 403, not 404, for a missing key" in verdict.message()
    template = copy.deepcopy(TemplateStack.load().template)
    _statement(template, "ApiTaskRole", "ListModels").pop("Condition")
    assert aws_calls.check_calls([plain], TemplateStack.load(template=template))[0].allowed


def test_operations_map_to_iam_actions_from_the_reference():
    assert actions_for("dynamodb", "BatchWriteItem") == ["dynamodb:BatchWriteItem"]
    assert actions_for("s3", "HeadObject") == ["s3:GetObject"]
    assert actions_for("s3", "ListObjectsV2") == ["s3:ListBucket"]
    assert actions_for("sts", "GetCallerIdentity") == []
    with pytest.raises(KeyError, match="not an IAM action"):
        actions_for("dynamodb", "NoSuchOperation")
    glue = permissions(Call("train_job", "glue", "GetTable", {"DatabaseName": "fraud", "Name": "features"}),
                       region=REGION, account=ACCOUNT)  # fmt: skip
    assert {p.resource for p in glue} == {
        f"arn:aws:glue:{REGION}:{ACCOUNT}:catalog",
        f"arn:aws:glue:{REGION}:{ACCOUNT}:database/fraud",
        f"arn:aws:glue:{REGION}:{ACCOUNT}:table/fraud/features",
    }




@pytest.mark.parametrize(
    "component",
    ["api_agent", "retrain_lambda", "train_job", "live_drift_job"],
)
def test_listed_calls_are_allowed(component):
    """Spark's catalog and S3 calls and the AWS runtimes' own calls with the component's role."""
    calls = [c for c in aws_calls.listed_calls() if c.component == component]
    assert calls
    denied = [v.message() for v in aws_calls.check_calls(calls, bound=True) if not v.allowed]
    assert denied == [], "\n".join(denied)


# ------------------------------------------------------------------------------ the SNS topic policy
def _topic_publishers(st: TemplateStack, topic: str) -> list[tuple[str, str, str]]:
    """(logical id, service principal, source ARN) of every alarm and rule of the template publishing to the topic."""
    out = []
    for lid in st.resources_of_type("AWS::CloudWatch::Alarm"):
        p = st.props(lid)
        actions = p.get("AlarmActions", []) + p.get("OKActions", []) + p.get("InsufficientDataActions", [])
        if topic in actions:
            out.append((lid, "cloudwatch.amazonaws.com", st.resolver.attrs[lid]["Arn"]))
    for lid in st.resources_of_type("AWS::Events::Rule"):
        if any(t["Arn"] == topic for t in st.props(lid).get("Targets", [])):
            out.append((lid, "events.amazonaws.com", st.resolver.attrs[lid]["Arn"]))
    return out


def _publish_denied(st: TemplateStack) -> list[str]:
    topic = st.ref("AlarmTopic")
    policy = st.topic_policies("AlarmTopic")
    denied = []
    for lid, service, source in _topic_publishers(st, topic):
        context = {"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT}
        ok, why = policy.decide("sns:Publish", topic, context, service_principal(service))
        if not ok:
            denied.append(f"{lid} ({service}): {why}")
    return denied


def test_alarm_topic_policy_admits_every_alarm_and_rule_that_publishes_to_it():
    st = TemplateStack.load()
    publishers = _topic_publishers(st, st.ref("AlarmTopic"))
    services = {s for _, s, _ in publishers}
    assert services == {"cloudwatch.amazonaws.com", "events.amazonaws.com"} and len(publishers) >= 7
    assert _publish_denied(st) == []


def test_alarm_topic_policy_admits_nobody_else():
    st = TemplateStack.load()
    topic, policy = st.ref("AlarmTopic"), st.topic_policies("AlarmTopic")
    other_alarm = f"arn:aws:cloudwatch:{REGION}:210987654321:alarm:fraud-dev-x"
    for principal, context in [
        ("cloudwatch.amazonaws.com", {"aws:SourceArn": other_alarm, "aws:SourceAccount": "210987654321"}),
        ("cloudwatch.amazonaws.com", {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:other"}),
        ("events.amazonaws.com", {"aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/other"}),
        ("s3.amazonaws.com", {"aws:SourceAccount": ACCOUNT}),
    ]:
        assert not policy.allows("sns:Publish", topic, context, service_principal(principal)), (principal, context)


def test_a_policy_that_replaces_the_default_without_the_alarms_is_caught():
    """The template before this check: a topic policy for the EventBridge rules only."""
    template = copy.deepcopy(TemplateStack.load().template)
    doc = template["Resources"]["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]
    doc["Statement"] = [s for s in doc["Statement"] if s["Principal"]["Service"] != "cloudwatch.amazonaws.com"]
    denied = _publish_denied(TemplateStack.load(template=template))
    assert any(d.startswith("DataDriftAlarm (cloudwatch.amazonaws.com)") for d in denied), denied
    assert not any("events.amazonaws.com" in d for d in denied)


def test_a_call_the_inventory_does_not_list_fails_its_test():
    """A new call (here the API writing the model pointer) is reported twice: unlisted, and denied."""
    rec = aws_calls.Recorded("api", "s3", "PutObject", {"Bucket": "any", "Key": "models/latest.json"}, ("api/x.py:f",))
    messages = aws_calls.failures([rec])
    assert any("api made s3.PutObject on 'models/latest.json'" in m and "inventory does not list" in m
               for m in messages), messages  # fmt: skip
    assert any("denied: s3:PutObject on arn:aws:s3:::fraud-dev-123456789012-us-east-1/models/latest.json" in m
               for m in messages), messages  # fmt: skip
    listed = aws_calls.Recorded("api", "s3", "GetObject", {"Bucket": "any", "Key": "models/v1/model.joblib"}, ("a:f",))
    assert aws_calls.failures([listed]) == []


@pytest.mark.aws_component("train_job")
@pytest.mark.parametrize(
    ("reader", "name", "resource"),
    [("card_hash_key", "card-hash-key", "CardHashKeySecret"),
     ("model_signing_key", "model-signing-key", "ModelSigningKeySecret")],
)  # fmt: skip
def test_the_training_jobs_secret_reads_are_checked_against_its_role(fake_aws_credentials, reader, name, resource):
    """glue/train_job.py reads the card-hash key and the model-signing key (moto in-process): each recorded,
    bound to its own secret in the template and allowed to the job's role."""
    import importlib.util
    from pathlib import Path

    import boto3
    from moto import mock_aws

    path = Path(__file__).resolve().parents[1] / "glue" / "train_job.py"
    spec = importlib.util.spec_from_file_location("train_job_for_iam", path)
    train_job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_job)
    with mock_aws():
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name=f"fraud/dev/{name}", SecretString=" k3y\n"
        )["ARN"]
        start = len(aws_calls.RECORDER.calls)
        assert getattr(train_job, reader)(arn) == "k3y"
    (call,) = [r.call for r in aws_calls.RECORDER.since(start)]
    assert (call.component, call.operation, call.caller) == ("train_job", "GetSecretValue", "glue/train_job.py:_secret")
    assert aws_calls.inventory_key(call) == ("train_job", "secretsmanager.GetSecretValue", resource)
    (verdict,) = aws_calls.check_calls([call])
    assert verdict.allowed and verdict.role == "GlueJobRole"
