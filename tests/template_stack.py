"""``infra/template.yaml`` resolved offline for one fixed account / region / environment.

Every resource gets the physical id and attributes CloudFormation would give it (names from the
template's own properties, ARNs in each service's documented format), so ``!Ref`` / ``!GetAtt`` /
``!Sub`` resolve without an account. The IAM call check reads the roles' policies and the SNS topic
policy from here; it never reads what a deployment built.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from iam_policy import PolicySet

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script's helper (tests/verify_*.py), the repository is not on the path
    sys.path.insert(0, str(ROOT))

from tools.emulator.cfn import (  # noqa: E402
    TEMPLATE_PATH,
    Resolver,
    TemplateError,
    creation_order,
    load_template,
    parameter_values,
)

ACCOUNT = "123456789012"
REGION = "us-east-1"
ENV = "dev"
# Parameters without a default (the deploy script asks for them); values only need to be well-formed.
REQUIRED = {
    "VpcId": "vpc-1",
    "PrivateSubnetIds": "subnet-1,subnet-2",
    "PublicSubnetIds": "subnet-3,subnet-4",
    "CertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/x",
    "ApiDomainName": "api.example.com",
}


class _Attrs(dict):
    """GetAtt of an attribute no rule below names: a recognisable placeholder rather than an error."""

    def __init__(self, logical_id: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.logical_id = logical_id

    def __missing__(self, attr: str) -> str:
        return f"{self.logical_id}.{attr}"


def _physical(logical_id: str, rtype: str, p: Mapping[str, Any], r: Resolver) -> tuple[Any, dict[str, Any]]:
    """(Ref value, GetAtt attributes) of one resource, as CloudFormation documents them per type."""
    a, reg, part = r.pseudo["AWS::AccountId"], r.pseudo["AWS::Region"], r.pseudo["AWS::Partition"]
    name = None
    if rtype == "AWS::S3::Bucket":
        name = p["BucketName"]
        return name, {"Arn": f"arn:{part}:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
    if rtype == "AWS::DynamoDB::Table":
        name = p["TableName"]
        arn = f"arn:{part}:dynamodb:{reg}:{a}:table/{name}"
        return name, {"Arn": arn, "StreamArn": f"{arn}/stream/x"}
    if rtype == "AWS::SecretsManager::Secret":
        arn = f"arn:{part}:secretsmanager:{reg}:{a}:secret:{p.get('Name', logical_id)}-AbCdEf"
        return arn, {"Id": arn}
    if rtype == "AWS::Logs::LogGroup":
        name = p["LogGroupName"]
        return name, {"Arn": f"arn:{part}:logs:{reg}:{a}:log-group:{name}:*"}
    if rtype == "AWS::SQS::Queue":
        name = p["QueueName"]
        return f"https://sqs.{reg}.amazonaws.com/{a}/{name}", {
            "Arn": f"arn:{part}:sqs:{reg}:{a}:{name}",
            "QueueName": name,
        }
    if rtype == "AWS::SNS::Topic":
        arn = f"arn:{part}:sns:{reg}:{a}:{p['TopicName']}"
        return arn, {"TopicArn": arn, "TopicName": p["TopicName"]}
    if rtype == "AWS::Events::Rule":
        return p["Name"], {"Arn": f"arn:{part}:events:{reg}:{a}:rule/{p['Name']}"}
    if rtype == "AWS::IAM::Role":
        return p["RoleName"], {"Arn": f"arn:{part}:iam::{a}:role/{p['RoleName']}", "RoleId": f"AROA{logical_id}"}
    if rtype == "AWS::Lambda::Function":
        return p["FunctionName"], {"Arn": f"arn:{part}:lambda:{reg}:{a}:function:{p['FunctionName']}"}
    if rtype == "AWS::ECR::Repository":
        name = p["RepositoryName"]
        return name, {
            "Arn": f"arn:{part}:ecr:{reg}:{a}:repository/{name}",
            "RepositoryUri": f"{a}.dkr.ecr.{reg}.amazonaws.com/{name}",
        }
    if rtype == "AWS::CloudWatch::Alarm":
        return p["AlarmName"], {"Arn": f"arn:{part}:cloudwatch:{reg}:{a}:alarm:{p['AlarmName']}"}
    if rtype in ("AWS::Glue::Job", "AWS::Glue::Trigger"):
        return p["Name"], {}
    if rtype == "AWS::Glue::Database":
        return p["DatabaseInput"]["Name"], {}
    if rtype == "AWS::Glue::Table":
        return p["TableInput"]["Name"], {}
    if rtype == "AWS::ECS::Cluster":
        name = p.get("ClusterName", logical_id)
        return name, {"Arn": f"arn:{part}:ecs:{reg}:{a}:cluster/{name}"}
    if rtype == "AWS::ElasticLoadBalancingV2::LoadBalancer":
        arn = f"arn:{part}:elasticloadbalancing:{reg}:{a}:loadbalancer/app/{logical_id}/0123456789abcdef"
        return arn, {"LoadBalancerFullName": f"app/{logical_id}/0123456789abcdef",
                     "DNSName": f"{logical_id}.{reg}.elb.amazonaws.com"}  # fmt: skip
    return f"{logical_id}-physical-id", {"Arn": f"arn:{part}:unknown:{reg}:{a}:{logical_id}"}


@dataclass
class TemplateStack:
    """The template, resolved: ``props(logical_id)`` and ``sub(text)`` work as in a deployed stack."""

    template: dict
    resolver: Resolver

    @classmethod
    def load(
        cls, template: dict | None = None, path: Path | str = TEMPLATE_PATH, *, env: str = ENV,
        account: str = ACCOUNT, region: str = REGION,
    ) -> TemplateStack:  # fmt: skip
        t = copy.deepcopy(template) if template is not None else load_template(path)
        params = parameter_values(t, {**REQUIRED, "EnvName": env, "LambdaCodeVersion": "v1"})
        r = Resolver(t, params, account_id=account, region=region, stack_name=f"fraud-{env}")
        order = creation_order(t, r.resource_enabled)
        for lid in order:  # names first: every resource's Ref / Arn, from the properties that name it
            res = t["Resources"][lid]
            try:
                props = r.resolve(res.get("Properties", {}))
            except TemplateError:
                props = {}
            ref, attrs = _physical(lid, res["Type"], props, r)
            r.refs[lid], r.attrs[lid] = ref, _Attrs(lid, attrs)
        return cls(t, r)

    def props(self, logical_id: str) -> dict:
        return self.resolver.resolve(self.template["Resources"][logical_id].get("Properties", {}))

    def resources_of_type(self, rtype: str) -> list[str]:
        return [lid for lid, res in self.template["Resources"].items()
                if res["Type"] == rtype and self.resolver.resource_enabled(lid)]  # fmt: skip

    def sub(self, text: str) -> str:
        return self.resolver.resolve({"Fn::Sub": text})

    def ref(self, logical_id: str) -> Any:
        return self.resolver.ref(logical_id)

    @cached_property
    def bucket(self) -> str:
        return self.ref("DataBucket")

    def role_policies(self, role_logical_id: str) -> PolicySet:
        cache = self.__dict__.setdefault("_policies", {})  # resolved once per role: evaluated per recorded call
        if role_logical_id not in cache:
            props = self.props(role_logical_id)
            docs = {f"{role_logical_id}/{p['PolicyName']}": p["PolicyDocument"] for p in props.get("Policies", [])}
            cache[role_logical_id] = PolicySet(docs)
        return cache[role_logical_id]

    def topic_policies(self, topic_logical_id: str) -> PolicySet:
        """The resource policy of an SNS topic: every AWS::SNS::TopicPolicy that names it (none: the default)."""
        topic = self.ref(topic_logical_id)
        docs = {}
        for lid in self.resources_of_type("AWS::SNS::TopicPolicy"):
            p = self.props(lid)
            if topic in p["Topics"]:
                docs[lid] = p["PolicyDocument"]
        return PolicySet(docs)
