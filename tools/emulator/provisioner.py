"""Provision the template into a local AWS emulator (moto server) through the services' own APIs.

moto's CloudFormation reports CREATE_COMPLETE while silently skipping Glue, Application Auto Scaling,
bucket versioning / notifications and the Fargate settings of ECS resources, so a moto stack proves
nothing. Instead, every resource of ``infra/template.yaml`` is created here from its own resolved
properties, in dependency order, by one handler per resource type (property names translated to the
API's), and the resolved Outputs are registered as a CloudFormation stack of the same name, so the
deployment checks find resources exactly as they do in a real account (``describe_stacks`` outputs).

The provisioner keeps the state of the previous call (resource properties and physical ids) in that
stack's template metadata, so a second call with new parameters (the deploy script's bootstrap ->
full sequence) behaves like a CloudFormation update: unchanged resources are kept, new ones created,
changed ones updated where a handler knows how, and refused otherwise.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from tools.emulator.cfn import Resolver, creation_order, load_template, parameter_values

log = logging.getLogger("tools.emulator")
STATE_KEY = "FraudEmulatorState"


class ProvisionError(RuntimeError):
    pass


# --------------------------------------------------------------------------------- helpers
def camel(node: Any, keep: frozenset[str] = frozenset({"options", "dockerLabels"})) -> Any:
    """PascalCase CloudFormation keys -> camelCase API keys (ECS, ECR), leaving free-form maps alone."""
    if isinstance(node, list):
        return [camel(v, keep) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        ck = k[:1].lower() + k[1:]
        out[ck] = v if ck in keep else camel(v, keep)
    return out


def coerce(client, operation: str, params: dict) -> dict:
    """Template values are strings (parameters); convert them to the types the API's model wants."""
    shape = client.meta.service_model.operation_model(operation).input_shape

    def conv(shape, value):
        if shape is None or value is None:
            return value
        t = shape.type_name
        if t == "structure" and isinstance(value, dict):
            return {k: conv(shape.members.get(k), v) for k, v in value.items()}
        if t == "list" and isinstance(value, list):
            return [conv(shape.member, v) for v in value]
        if t == "map" and isinstance(value, dict):
            return {k: conv(shape.value, v) for k, v in value.items()}
        if t in ("integer", "long") and isinstance(value, str):
            return int(value)
        if t in ("double", "float") and isinstance(value, str | int):
            return float(value)
        if t == "boolean" and isinstance(value, str):
            return value.lower() == "true"
        if t == "string" and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    return conv(shape, params)


def call(client, operation: str, **params) -> dict:
    return getattr(client, operation)(**coerce(client, _op_name(client, operation), params))


def _op_name(client, python_name: str) -> str:
    for name in client.meta.service_model.operation_names:
        if client.meta.method_to_api_mapping.get(python_name) == name:
            return name
    raise ProvisionError(f"{client.meta.service_model.service_name} has no operation {python_name}")


def tag_list(props: Mapping) -> list[dict]:
    tags = props.get("Tags") or []
    if isinstance(tags, dict):
        return [{"Key": k, "Value": v} for k, v in tags.items()]
    return list(tags)


@dataclass
class Created:
    ref: str
    attrs: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------- provisioner
class EmulatorProvisioner:
    """``infra.deploy.Provisioner`` for the emulator; ``template`` (tests) replaces infra/template.yaml."""

    def __init__(self, session: boto3.Session, endpoint_url: str, region: str, template: Mapping | None = None) -> None:
        self.session = session
        self.endpoint_url = endpoint_url
        self.region = region
        self.template = template
        self._clients: dict[str, Any] = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, endpoint_url=self.endpoint_url, region_name=self.region
            )
        return self._clients[service]

    # --- infra.deploy.Provisioner ----------------------------------------------------------------
    def current_outputs(self, stack_name: str) -> dict[str, str] | None:
        try:
            stack = self.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def apply(self, stack_name: str, parameters: Mapping[str, Any]) -> dict[str, str]:
        return self.provision(stack_name, parameters, template=self.template)

    # --- public -------------------------------------------------------------------------------
    def provision(
        self,
        stack_name: str,
        parameters: Mapping[str, Any],
        template: Mapping | None = None,
        after_create: Callable[[str, Created], None] | None = None,
    ) -> dict[str, str]:
        """Create or update every enabled resource; register the outputs as a stack; return them."""
        template = template or load_template()
        account = self.client("sts").get_caller_identity()["Account"]
        params = parameter_values(template, parameters)
        resolver = Resolver(template, params, account_id=account, region=self.region, stack_name=stack_name)
        failed = resolver.failed_rules()  # CloudFormation refuses the call before creating anything
        if failed:
            raise ProvisionError("template rule(s) not met: " + "; ".join(failed))
        previous = self._previous_state(stack_name)
        state: dict[str, dict] = {}
        for logical_id in creation_order(template, resolver.resource_enabled):
            spec = template["Resources"][logical_id]
            rtype = spec["Type"]
            props = resolver.resolve(spec.get("Properties", {}))
            before = previous.get(logical_id)
            if before and before["type"] == rtype and before["props"] == _jsonable(props):
                created = Created(before["ref"], before["attrs"])
            else:
                handler = getattr(self, "_" + rtype.replace("AWS::", "").replace("::", "_"), None)
                if handler is None:
                    raise ProvisionError(f"{logical_id}: no emulator handler for {rtype}")
                if before is not None and not getattr(handler, "updatable", False):
                    raise ProvisionError(
                        f"{logical_id} ({rtype}) changed, and the emulator cannot update it: reset the emulator"
                    )
                log.debug("%s %s", "updating" if before else "creating", logical_id)
                try:
                    created = handler(logical_id, props, resolver)
                except ClientError as exc:
                    raise ProvisionError(f"{logical_id} ({rtype}): {exc}") from exc
            resolver.refs[logical_id] = created.ref
            resolver.attrs[logical_id] = created.attrs
            state[logical_id] = {"type": rtype, "props": _jsonable(props), "ref": created.ref, "attrs": created.attrs}
            if after_create is not None:
                after_create(logical_id, created)
        outputs = resolver.outputs()
        self._register_stack(stack_name, params, outputs, state)
        return outputs

    # --- the stack record ---------------------------------------------------------------------
    def _previous_state(self, stack_name: str) -> dict:
        cf = self.client("cloudformation")
        try:
            body = cf.get_template(StackName=stack_name)["TemplateBody"]
        except ClientError:
            return {}
        body = json.loads(body) if isinstance(body, str) else body
        return json.loads(body.get("Metadata", {}).get(STATE_KEY, "{}"))

    def _register_stack(self, stack_name: str, params: Mapping, outputs: Mapping[str, str], state: dict) -> None:
        body = {
            "Description": "Emulator record of infra/template.yaml: resources were created through the service APIs",
            "Metadata": {STATE_KEY: json.dumps(state)},
            "Resources": {"EmulatorRecord": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {k: {"Value": v} for k, v in outputs.items()},
        }
        cf = self.client("cloudformation")
        tags = [{"Key": "fraud:env", "Value": str(params.get("EnvName", ""))}]
        try:
            cf.describe_stacks(StackName=stack_name)
            cf.delete_stack(StackName=stack_name)
        except ClientError:
            pass
        cf.create_stack(StackName=stack_name, TemplateBody=json.dumps(body), Tags=tags)

    # --- S3 -------------------------------------------------------------------------------
    def _S3_Bucket(self, lid: str, p: dict, r: Resolver) -> Created:
        s3 = self.client("s3")
        name = p["BucketName"]
        try:
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=name)
            else:
                s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                raise
        if "VersioningConfiguration" in p:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=p["VersioningConfiguration"])
        if "BucketEncryption" in p:
            rules = []
            for rule in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
                rules.append(
                    {
                        "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                        **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                    }
                )
            call(s3, "put_bucket_encryption", Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in p:
            call(s3, "put_public_access_block", Bucket=name,
                 PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])  # fmt: skip
        if "OwnershipControls" in p:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
        if "LifecycleConfiguration" in p:
            rules = []
            for rule in p["LifecycleConfiguration"]["Rules"]:
                api_rule = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
                for key in ("NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload", "Expiration"):
                    if key in rule:
                        api_rule[key] = rule[key]
                if "ExpirationInDays" in rule:
                    api_rule["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
                rules.append(api_rule)
            call(s3, "put_bucket_lifecycle_configuration", Bucket=name, LifecycleConfiguration={"Rules": rules})
        notification: dict[str, list] = {}
        for cfg in p.get("NotificationConfiguration", {}).get("LambdaConfigurations", []):
            item = {"LambdaFunctionArn": cfg["Function"], "Events": [cfg["Event"]]}
            if "Filter" in cfg:
                item["Filter"] = {"Key": {"FilterRules": cfg["Filter"]["S3Key"]["Rules"]}}
            notification.setdefault("LambdaFunctionConfigurations", []).append(item)
        s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=notification)
        if p.get("Tags"):
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": tag_list(p)})
        arn = f"arn:aws:s3:::{name}"
        return Created(name, {"Arn": arn, "DomainName": f"{name}.s3.amazonaws.com"})

    _S3_Bucket.updatable = True  # every call above is a PUT of the whole configuration

    def _S3_BucketPolicy(self, lid: str, p: dict, r: Resolver) -> Created:
        self.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
        return Created(p["Bucket"])

    _S3_BucketPolicy.updatable = True

    # --- Glue -----------------------------------------------------------------------------
    def _Glue_Database(self, lid: str, p: dict, r: Resolver) -> Created:
        self.client("glue").create_database(CatalogId=p["CatalogId"], DatabaseInput=p["DatabaseInput"])
        return Created(p["DatabaseInput"]["Name"])

    def _Glue_Table(self, lid: str, p: dict, r: Resolver) -> Created:
        glue = self.client("glue")
        call(glue, "create_table", CatalogId=p["CatalogId"], DatabaseName=p["DatabaseName"], TableInput=p["TableInput"])
        return Created(p["TableInput"]["Name"])

    def _Glue_Job(self, lid: str, p: dict, r: Resolver) -> Created:
        glue = self.client("glue")
        args = {k: v for k, v in p.items() if k != "Tags"}
        try:
            glue.get_job(JobName=p["Name"])
            update = {k: v for k, v in args.items() if k != "Name"}
            call(glue, "update_job", JobName=p["Name"], JobUpdate=update)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "EntityNotFoundException":
                raise
            call(glue, "create_job", **args, Tags=p.get("Tags", {}))
        return Created(p["Name"])

    _Glue_Job.updatable = True

    def _Glue_Trigger(self, lid: str, p: dict, r: Resolver) -> Created:
        call(self.client("glue"), "create_trigger", **p)
        return Created(p["Name"])

    # --- Lambda, SQS, logs ---------------------------------------------------------------
    def _SQS_Queue(self, lid: str, p: dict, r: Resolver) -> Created:
        sqs = self.client("sqs")
        attributes = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in p.items() if k != "QueueName"}
        url = sqs.create_queue(QueueName=p["QueueName"], Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Created(url, {"Arn": arn, "QueueName": p["QueueName"], "QueueUrl": url})

    def _Logs_LogGroup(self, lid: str, p: dict, r: Resolver) -> Created:
        logs = self.client("logs")
        logs.create_log_group(logGroupName=p["LogGroupName"])
        if "RetentionInDays" in p:
            logs.put_retention_policy(logGroupName=p["LogGroupName"], retentionInDays=int(p["RetentionInDays"]))
        arn = f"arn:aws:logs:{self.region}:{r.pseudo['AWS::AccountId']}:log-group:{p['LogGroupName']}:*"
        return Created(p["LogGroupName"], {"Arn": arn})

    def _Lambda_Function(self, lid: str, p: dict, r: Resolver) -> Created:
        lam = self.client("lambda")
        args = {k: v for k, v in p.items() if k not in ("ReservedConcurrentExecutions", "Tags")}
        args["Tags"] = {t["Key"]: t["Value"] for t in tag_list(p)}
        fn = call(lam, "create_function", **args)
        if "ReservedConcurrentExecutions" in p:
            call(lam, "put_function_concurrency", FunctionName=p["FunctionName"],
                 ReservedConcurrentExecutions=p["ReservedConcurrentExecutions"])  # fmt: skip
        return Created(p["FunctionName"], {"Arn": fn["FunctionArn"]})

    def _Lambda_EventInvokeConfig(self, lid: str, p: dict, r: Resolver) -> Created:
        call(self.client("lambda"), "put_function_event_invoke_config", **p)
        return Created(f"{p['FunctionName']}:{p['Qualifier']}")

    def _Lambda_Permission(self, lid: str, p: dict, r: Resolver) -> Created:
        call(self.client("lambda"), "add_permission", StatementId=lid, **p)
        return Created(lid)

    # --- DynamoDB, Secrets Manager ------------------------------------------------------------
    def _DynamoDB_Table(self, lid: str, p: dict, r: Resolver) -> Created:
        ddb = self.client("dynamodb")
        args = {k: p[k] for k in ("TableName", "BillingMode", "AttributeDefinitions", "KeySchema") if k in p}
        if "SSESpecification" in p:
            args["SSESpecification"] = {"Enabled": p["SSESpecification"]["SSEEnabled"]}
        if p.get("Tags"):
            args["Tags"] = tag_list(p)
        desc = call(ddb, "create_table", **args)["TableDescription"]
        if "TimeToLiveSpecification" in p:
            call(ddb, "update_time_to_live", TableName=p["TableName"],
                 TimeToLiveSpecification=p["TimeToLiveSpecification"])  # fmt: skip
        if "PointInTimeRecoverySpecification" in p:
            call(ddb, "update_continuous_backups", TableName=p["TableName"],
                 PointInTimeRecoverySpecification=p["PointInTimeRecoverySpecification"])  # fmt: skip
        return Created(p["TableName"], {"Arn": desc["TableArn"], "StreamArn": desc.get("LatestStreamArn", "")})

    def _SecretsManager_Secret(self, lid: str, p: dict, r: Resolver) -> Created:
        sm = self.client("secretsmanager")
        gen = p.get("GenerateSecretString")
        value = p.get("SecretString")
        if gen is not None:
            value = call(sm, "get_random_password", **gen)["RandomPassword"]
        secret = sm.create_secret(Name=p["Name"], Description=p.get("Description", ""), SecretString=value)
        return Created(secret["ARN"], {"Id": secret["ARN"]})

    # --- ECR, ECS ---------------------------------------------------------------------------
    def _ECR_Repository(self, lid: str, p: dict, r: Resolver) -> Created:
        ecr = self.client("ecr")
        args = camel({k: v for k, v in p.items() if k != "LifecyclePolicy"})
        repo = call(ecr, "create_repository", **args)["repository"]
        if "LifecyclePolicy" in p:
            ecr.put_lifecycle_policy(
                repositoryName=p["RepositoryName"], lifecyclePolicyText=p["LifecyclePolicy"]["LifecyclePolicyText"]
            )
        return Created(p["RepositoryName"], {"Arn": repo["repositoryArn"], "RepositoryUri": repo["repositoryUri"]})

    def _ECS_Cluster(self, lid: str, p: dict, r: Resolver) -> Created:
        args = {"clusterName": p["ClusterName"], "settings": camel(p.get("ClusterSettings", []))}
        cluster = call(self.client("ecs"), "create_cluster", **args)["cluster"]
        return Created(p["ClusterName"], {"Arn": cluster["clusterArn"]})

    def _ECS_TaskDefinition(self, lid: str, p: dict, r: Resolver) -> Created:
        td = call(self.client("ecs"), "register_task_definition", **camel(p))["taskDefinition"]
        return Created(td["taskDefinitionArn"], {"TaskDefinitionArn": td["taskDefinitionArn"]})

    _ECS_TaskDefinition.updatable = True  # a new revision, as CloudFormation does

    def _ECS_Service(self, lid: str, p: dict, r: Resolver) -> Created:
        args = camel(p)
        svc = call(self.client("ecs"), "create_service", **args)["service"]
        return Created(svc["serviceArn"], {"Name": svc["serviceName"], "ServiceArn": svc["serviceArn"]})

    # --- EC2, ELBv2, WAF ----------------------------------------------------------------------
    @staticmethod
    def _permission(rule: Mapping) -> dict:
        perm: dict[str, Any] = {"IpProtocol": rule["IpProtocol"]}
        for key in ("FromPort", "ToPort"):
            if key in rule:
                perm[key] = int(rule[key])
        desc = {"Description": rule["Description"]} if "Description" in rule else {}
        if "CidrIp" in rule:
            perm["IpRanges"] = [{"CidrIp": rule["CidrIp"], **desc}]
        group = rule.get("SourceSecurityGroupId") or rule.get("DestinationSecurityGroupId")
        if group:
            perm["UserIdGroupPairs"] = [{"GroupId": group, **desc}]
        return perm

    def _EC2_SecurityGroup(self, lid: str, p: dict, r: Resolver) -> Created:
        ec2 = self.client("ec2")
        gid = ec2.create_security_group(GroupName=p["GroupName"], Description=p["GroupDescription"],
                                        VpcId=p["VpcId"])["GroupId"]  # fmt: skip
        if p.get("SecurityGroupIngress"):
            ec2.authorize_security_group_ingress(
                GroupId=gid, IpPermissions=[self._permission(x) for x in p["SecurityGroupIngress"]]
            )
        if p.get("SecurityGroupEgress"):  # explicit egress replaces the default allow-all, as in CloudFormation
            ec2.revoke_security_group_egress(
                GroupId=gid, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
            )
            ec2.authorize_security_group_egress(
                GroupId=gid, IpPermissions=[self._permission(x) for x in p["SecurityGroupEgress"]]
            )
        return Created(gid, {"GroupId": gid, "VpcId": p["VpcId"]})

    def _EC2_SecurityGroupEgress(self, lid: str, p: dict, r: Resolver) -> Created:
        self.client("ec2").authorize_security_group_egress(GroupId=p["GroupId"], IpPermissions=[self._permission(p)])
        return Created(lid)

    def _ElasticLoadBalancingV2_LoadBalancer(self, lid: str, p: dict, r: Resolver) -> Created:
        elb = self.client("elbv2")
        args = {k: v for k, v in p.items() if k != "LoadBalancerAttributes"}
        lb = call(elb, "create_load_balancer", **args)["LoadBalancers"][0]
        if p.get("LoadBalancerAttributes"):
            elb.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"],
                                                Attributes=p["LoadBalancerAttributes"])  # fmt: skip
        arn = lb["LoadBalancerArn"]
        return Created(
            arn,
            {
                "DNSName": lb["DNSName"],
                "LoadBalancerFullName": arn.split(":loadbalancer/", 1)[1],
                "LoadBalancerName": lb["LoadBalancerName"],
                "CanonicalHostedZoneID": lb.get("CanonicalHostedZoneId", ""),
            },
        )

    def _ElasticLoadBalancingV2_TargetGroup(self, lid: str, p: dict, r: Resolver) -> Created:
        elb = self.client("elbv2")
        args = {k: v for k, v in p.items() if k != "TargetGroupAttributes"}
        tg = call(elb, "create_target_group", **args)["TargetGroups"][0]
        if p.get("TargetGroupAttributes"):
            elb.modify_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"],
                                               Attributes=p["TargetGroupAttributes"])  # fmt: skip
        arn = tg["TargetGroupArn"]
        return Created(arn, {"TargetGroupFullName": arn.rsplit(":", 1)[1], "TargetGroupName": tg["TargetGroupName"]})

    def _ElasticLoadBalancingV2_Listener(self, lid: str, p: dict, r: Resolver) -> Created:
        listener = call(self.client("elbv2"), "create_listener", **p)["Listeners"][0]
        return Created(listener["ListenerArn"], {"ListenerArn": listener["ListenerArn"]})

    def _WAFv2_WebACL(self, lid: str, p: dict, r: Resolver) -> Created:
        acl = call(self.client("wafv2"), "create_web_acl", **p)["Summary"]
        return Created(f"{acl['Name']}|{acl['Id']}|{p['Scope']}", {"Arn": acl["ARN"], "Id": acl["Id"]})

    def _WAFv2_WebACLAssociation(self, lid: str, p: dict, r: Resolver) -> Created:
        call(self.client("wafv2"), "associate_web_acl", **p)
        return Created(lid)

    # --- Application Auto Scaling ------------------------------------------------------------
    def _ApplicationAutoScaling_ScalableTarget(self, lid: str, p: dict, r: Resolver) -> Created:
        call(self.client("application-autoscaling"), "register_scalable_target", **p)
        return Created(f"{p['ResourceId']}|{p['ScalableDimension']}|{p['ServiceNamespace']}")

    _ApplicationAutoScaling_ScalableTarget.updatable = True

    def _ApplicationAutoScaling_ScalingPolicy(self, lid: str, p: dict, r: Resolver) -> Created:
        resource_id, dimension, namespace = p.pop("ScalingTargetId").split("|")
        policy = call(self.client("application-autoscaling"), "put_scaling_policy", ResourceId=resource_id,
                      ScalableDimension=dimension, ServiceNamespace=namespace, **p)  # fmt: skip
        return Created(policy["PolicyARN"], {"Arn": policy["PolicyARN"]})

    _ApplicationAutoScaling_ScalingPolicy.updatable = True

    # --- SNS, EventBridge, CloudWatch ---------------------------------------------------------
    def _SNS_Topic(self, lid: str, p: dict, r: Resolver) -> Created:
        arn = self.client("sns").create_topic(Name=p["TopicName"])["TopicArn"]
        return Created(arn, {"TopicArn": arn, "TopicName": p["TopicName"]})

    def _SNS_TopicPolicy(self, lid: str, p: dict, r: Resolver) -> Created:
        for topic in p["Topics"]:
            self.client("sns").set_topic_attributes(
                TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
            )
        return Created(lid)

    def _SNS_Subscription(self, lid: str, p: dict, r: Resolver) -> Created:
        sub = self.client("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"])
        return Created(sub["SubscriptionArn"])

    def _Events_Rule(self, lid: str, p: dict, r: Resolver) -> Created:
        events = self.client("events")
        args = {k: v for k, v in p.items() if k not in ("Targets", "EventPattern")}
        arn = events.put_rule(EventPattern=json.dumps(p["EventPattern"]), **args)["RuleArn"]
        if p.get("Targets"):
            events.put_targets(Rule=p["Name"], Targets=p["Targets"])
        return Created(p["Name"], {"Arn": arn})

    def _CloudWatch_Alarm(self, lid: str, p: dict, r: Resolver) -> Created:
        cw = self.client("cloudwatch")
        call(cw, "put_metric_alarm", **p)
        arn = cw.describe_alarms(AlarmNames=[p["AlarmName"]])["MetricAlarms"][0]["AlarmArn"]
        return Created(p["AlarmName"], {"Arn": arn})

    _CloudWatch_Alarm.updatable = True

    # --- KMS, Route 53 ---------------------------------------------------------------------------
    def _KMS_Key(self, lid: str, p: dict, r: Resolver) -> Created:
        kms = self.client("kms")
        meta = kms.create_key(
            Description=p.get("Description", ""),
            Policy=json.dumps(p["KeyPolicy"]),
            Tags=[{"TagKey": t["Key"], "TagValue": t["Value"]} for t in tag_list(p)],
        )["KeyMetadata"]
        if str(p.get("EnableKeyRotation", "false")).lower() == "true":
            kms.enable_key_rotation(KeyId=meta["KeyId"])
        return Created(meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]})

    def _KMS_Alias(self, lid: str, p: dict, r: Resolver) -> Created:
        self.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
        return Created(p["AliasName"])

    def _Route53_RecordSet(self, lid: str, p: dict, r: Resolver) -> Created:
        record = {"Name": p["Name"], "Type": p["Type"]}
        if "AliasTarget" in p:
            record["AliasTarget"] = p["AliasTarget"]
        else:
            record |= {"TTL": int(p["TTL"]), "ResourceRecords": [{"Value": v} for v in p["ResourceRecords"]]}
        call(self.client("route53"), "change_resource_record_sets", HostedZoneId=p["HostedZoneId"],
             ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]})  # fmt: skip
        return Created(p["Name"])

    # --- IAM ------------------------------------------------------------------------------
    def _IAM_RolePolicy(self, lid: str, p: dict, r: Resolver) -> Created:
        self.client("iam").put_role_policy(RoleName=p["RoleName"], PolicyName=p["PolicyName"],
                                           PolicyDocument=json.dumps(p["PolicyDocument"]))  # fmt: skip
        return Created(f"{p['RoleName']}|{p['PolicyName']}")

    _IAM_RolePolicy.updatable = True

    def _IAM_Role(self, lid: str, p: dict, r: Resolver) -> Created:
        iam = self.client("iam")
        role = iam.create_role(
            RoleName=p["RoleName"],
            AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]),
            Description=p.get("Description", ""),
        )["Role"]
        for policy in p.get("Policies", []):
            iam.put_role_policy(RoleName=p["RoleName"], PolicyName=policy["PolicyName"],
                                PolicyDocument=json.dumps(policy["PolicyDocument"]))  # fmt: skip
        for arn in p.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=p["RoleName"], PolicyArn=arn)
        return Created(p["RoleName"], {"Arn": role["Arn"], "RoleId": role["RoleId"]})


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def wait_for_server(endpoint_url: str, timeout: float = 10.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=2):  # noqa: S310 - local emulator
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
