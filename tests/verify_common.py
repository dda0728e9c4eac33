"""Shared by the deployment checks ``tests/verify_*.py``.

Every check finds the deployment through the CloudFormation stack's outputs (stack name from
``--stack-name`` / ``FRAUD_STACK_NAME``, default ``fraud-<env>``), so it runs unchanged against a real
account (credentials from the usual AWS chain) and against the local emulator (``--endpoint-url`` /
``FRAUD_AWS_ENDPOINT_URL``, where ``tools.emulator`` registers the same outputs). Each check prints one
``PASS`` / ``FAIL`` line, or ``SKIP`` with the reason when it cannot run where it is pointed (the emulator
runs no Lambda code and no ECS task); the script exits 1 if any check failed.

The checks look at what the deployment does and holds (the code a function runs, the tasks a service
keeps running, the run a file started), not at the template read back: against the emulator every
resource was built from the same template, so a comparison with the template could never fail.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class CheckFailed(AssertionError):
    pass


def expect(condition: Any, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def expect_equal(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


class Report:
    """Collects one PASS/FAIL line per check; ``exit_code()`` is 1 when any check failed."""

    def __init__(self, component: str, out=None) -> None:
        self.component = component
        self.out = out or sys.stdout
        self.passed: list[str] = []
        self.failed: list[str] = []
        self.skipped: list[str] = []

    def _line(self, status: str, name: str, detail: str) -> None:
        print(f"{status:<5} {self.component}: {name}{(' - ' + detail) if detail else ''}", file=self.out, flush=True)

    @contextlib.contextmanager
    def check(self, name: str, detail: str = "") -> Iterator[dict]:
        """``with report.check("name") as note: ...``; set ``note["detail"]`` to show a value on PASS."""
        note = {"detail": detail}
        try:
            yield note
        except CheckFailed as exc:
            self.failed.append(name)
            self._line("FAIL", name, str(exc))
        except Exception as exc:  # an API error is a failed check, with a message a human can act on
            self.failed.append(name)
            self._line("FAIL", name, f"{type(exc).__name__}: {exc}")
            if os.environ.get("FRAUD_VERIFY_DEBUG"):
                traceback.print_exc()
        else:
            self.passed.append(name)
            self._line("PASS", name, note["detail"])

    def info(self, name: str, detail: str) -> None:
        self._line("INFO", name, detail)

    def skip(self, name: str, reason: str) -> None:
        """A check that could not run here: said, with why, and never counted as passed."""
        self.skipped.append(name)
        self._line("SKIP", name, reason)

    def summary(self) -> int:
        total = len(self.passed) + len(self.failed)
        status = "FAIL" if self.failed else "PASS"
        skipped = f", {len(self.skipped)} skipped (see SKIP lines)" if self.skipped else ""
        print(
            f"{status:<5} {self.component}: {len(self.passed)}/{total} checks passed{skipped}",
            file=self.out,
            flush=True,
        )
        return 1 if self.failed else 0


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--env", default=os.environ.get("FRAUD_ENV", "dev"), help="environment name (FRAUD_ENV)")
    p.add_argument("--stack-name", default=os.environ.get("FRAUD_STACK_NAME"), help="default fraud-<env>")
    p.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    )
    p.add_argument(
        "--endpoint-url",
        default=os.environ.get("FRAUD_AWS_ENDPOINT_URL"),
        help="AWS endpoint override, e.g. the local emulator (FRAUD_AWS_ENDPOINT_URL)",
    )
    p.add_argument(
        "--alarm-email",
        default=os.environ.get("FRAUD_ALARM_EMAIL"),
        help="alarm checks: the address that must be subscribed to the alarm topic (default: the stack's "
        "AlarmEmail parameter; FRAUD_ALARM_EMAIL)",
    )
    p.add_argument(
        "--runtime-checks",
        choices=["auto", "always"],
        default="auto",
        help="checks that need running code or tasks (Lambda invoke, ECS tasks, healthy targets): 'auto' skips "
        "them against --endpoint-url (moto runs neither), 'always' runs them there too",
    )
    return p


class Deployment:
    """The stack's outputs plus boto3 clients pointed at the same account / emulator."""

    def __init__(self, args: argparse.Namespace, session=None) -> None:
        import boto3

        self.args = args
        self.region = args.region
        self.endpoint_url = args.endpoint_url
        self.stack_name = args.stack_name or f"fraud-{args.env}"
        self.session = session or boto3.Session(region_name=self.region)
        self._clients: dict[str, Any] = {}
        stack = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"][0]
        self.stack_status = stack["StackStatus"]
        self.outputs: dict[str, str] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.parameters: dict[str, str] = {
            p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])
        }

    @property
    def runtime_checks(self) -> bool:
        """False against an emulator (an endpoint override), unless ``--runtime-checks always``."""
        return not self.endpoint_url or getattr(self.args, "runtime_checks", "auto") == "always"

    def runtime_skip_reason(self, what: str) -> str:
        return (
            f"the emulator at {self.endpoint_url} cannot {what} (moto runs no Lambda code and no ECS task); "
            "run this script against the account, or pass --runtime-checks always to an emulator that can"
        )

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url
            )
        return self._clients[service]

    def output(self, key: str) -> str:
        try:
            return self.outputs[key]
        except KeyError as exc:
            raise CheckFailed(f"stack {self.stack_name} has no output {key}") from exc

    @property
    def bucket(self) -> str:
        return self.output("BucketName")

    @property
    def account(self) -> str:
        return self.output("GlueJobRoleArn").split(":")[4]

    def table_arn(self, name: str) -> str:
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"

    def alarms(self) -> list[dict]:
        out = []
        for page in self.client("cloudwatch").get_paginator("describe_alarms").paginate():
            out.extend(page.get("MetricAlarms", []))
        return out


def open_deployment(args: argparse.Namespace, report: Report, session=None) -> Deployment | None:
    with report.check("stack outputs readable") as note:
        dep = Deployment(args, session=session)
        expect(dep.stack_status.endswith("_COMPLETE") and "ROLLBACK" not in dep.stack_status,
               f"stack {dep.stack_name} is {dep.stack_status}")  # fmt: skip
        note["detail"] = f"{dep.stack_name}: {len(dep.outputs)} outputs ({dep.stack_status})"
        return dep
    return None


# ----------------------------------------------------------------------------- shared inspections
def check_table(report: Report, dep: Deployment, label: str, name: str, keys: list[tuple[str, str, str]]) -> None:
    """DynamoDB table: key schema, on-demand, TTL on expires_at, point-in-time recovery, encryption."""
    ddb = dep.client("dynamodb")
    with report.check(f"{label} table {name} key schema and on-demand billing"):
        t = ddb.describe_table(TableName=name)["Table"]
        types = {a["AttributeName"]: a["AttributeType"] for a in t["AttributeDefinitions"]}
        got = [(k["AttributeName"], types.get(k["AttributeName"]), k["KeyType"]) for k in t["KeySchema"]]
        expect_equal(got, keys, "key schema (name, type, role)")
        mode = (t.get("BillingModeSummary") or {}).get("BillingMode")
        expect_equal(mode, "PAY_PER_REQUEST", "billing mode")
    with report.check(f"{label} table {name} TTL on expires_at"):
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        expect(ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"), f"TTL status {ttl.get('TimeToLiveStatus')}")
        expect_equal(ttl.get("AttributeName"), "expires_at", "TTL attribute")
    with report.check(f"{label} table {name} point-in-time recovery and encryption"):
        backups = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        expect_equal(pitr, "ENABLED", "point-in-time recovery")
        sse = ddb.describe_table(TableName=name)["Table"].get("SSEDescription", {})
        # DynamoDB always encrypts at rest; SSEDescription ENABLED means a KMS key (AWS managed or own).
        expect(sse.get("Status") in ("ENABLED", "ENABLING"), f"SSE status {sse.get('Status')!r} (want KMS SSE)")


def check_log_group(report: Report, dep: Deployment, label: str, name: str, max_days: int = 400) -> None:
    with report.check(f"{label} log group {name} has a retention") as note:
        groups = dep.client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        group = next((g for g in groups if g["logGroupName"] == name), None)
        expect(group is not None, f"log group {name} does not exist")
        days = group.get("retentionInDays")
        expect(days and days <= max_days, f"retention {days!r} days (never-expiring logs)")
        note["detail"] = f"{days} days"


def _policy_document(doc: Any) -> dict:
    """IAM returns trust policies as a dict (boto3 decodes them) or, from some endpoints, URL-encoded JSON."""
    if isinstance(doc, str):
        return json.loads(urllib.parse.unquote(doc))
    return doc or {}


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value] if value is not None else []


def check_role(report: Report, dep: Deployment, label: str, role_arn: str, service: str, stack_output: str) -> None:
    """The role a resource actually runs as exists, is the stack's, and ``service`` may assume it.

    A role the service cannot assume fails every invocation / task / job run, whatever its policies say.
    """
    name = role_arn.rsplit("/", 1)[-1]
    with report.check(f"{label} runs as the stack's role {name}, which {service} may assume"):
        expect_equal(role_arn, dep.output(stack_output), f"role (the stack's {stack_output})")
        role = dep.client("iam").get_role(RoleName=name)["Role"]
        expect_equal(role["Arn"], role_arn, "the role's ARN in IAM")
        trust = _policy_document(role.get("AssumeRolePolicyDocument"))
        ok = any(
            st.get("Effect") == "Allow"
            and "sts:AssumeRole" in _as_list(st.get("Action"))
            and service in _as_list((st.get("Principal") or {}).get("Service"))
            for st in _as_list(trust.get("Statement"))
        )
        expect(ok, f"the trust policy of {name} does not let {service} assume it: {json.dumps(trust)}")


# ----------------------------------------------------------------------------- alarms
def check_alarm_topic(report: Report, dep: Deployment) -> str | None:
    """The stack's alarm topic exists, and the alarm e-mail (if one was given) is a confirmed subscriber."""
    topic = dep.outputs.get("AlarmTopicArn")
    sns = dep.client("sns")
    with report.check("alarm topic exists") as note:
        expect(topic, f"stack {dep.stack_name} has no AlarmTopicArn output")
        sns.get_topic_attributes(TopicArn=topic)
        note["detail"] = topic
    if not topic or "alarm topic exists" in report.failed:
        return None
    subs: list[dict] = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic):
        subs.extend(page.get("Subscriptions", []))
    email = dep.args.alarm_email or dep.parameters.get("AlarmEmail")
    if email:
        with report.check(f"alarm topic delivers to {email}") as note:
            mine = [s for s in subs if s.get("Protocol") == "email" and s.get("Endpoint", "").lower() == email.lower()]
            expect(mine, f"no e-mail subscription of {email} to {topic} (subscribers: "
                         f"{[s.get('Endpoint') for s in subs]})")  # fmt: skip
            confirmed = [s for s in mine if s.get("SubscriptionArn", "").startswith("arn:")]
            expect(confirmed, f"the subscription of {email} is {mine[0].get('SubscriptionArn')}: "
                              "confirm it from the e-mail AWS sent, or no alarm reaches anyone")  # fmt: skip
            note["detail"] = confirmed[0]["SubscriptionArn"]
    elif subs:
        report.info("alarm topic subscribers", ", ".join(f"{s.get('Protocol')}:{s.get('Endpoint')}" for s in subs))
    else:
        report.skip(
            "alarm topic delivers to someone",
            "no alarm e-mail given (--alarm-email, FRAUD_ALARM_EMAIL or the stack's AlarmEmail) and the topic has "
            "no subscriber: alarms reach nobody",
        )
    return topic


def expect_notifies_only(alarm: dict, topic: str | None) -> None:
    """The alarm is enabled and every one of its actions is the stack's alarm topic."""
    name = alarm.get("AlarmName")
    expect(topic, "the stack's alarm topic is unknown (see 'alarm topic exists')")
    expect(alarm.get("ActionsEnabled", True), f"alarm {name} has its actions disabled")
    actions = alarm.get("AlarmActions", [])
    expect(actions, f"alarm {name} has no action")
    every = [*actions, *alarm.get("OKActions", []), *alarm.get("InsufficientDataActions", [])]
    others = [a for a in every if a != topic]
    expect(not others, f"alarm {name} notifies {others}, not the stack's alarm topic {topic}")


def s3_event(bucket: str, key: str, size: int, etag: str, sequencer: str, region: str = "us-east-1") -> dict:
    """The ObjectCreated:Put notification S3 delivers for an object (key URL-encoded, as S3 does)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "landing",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": urllib.parse.quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag,
                        "sequencer": sequencer,
                    },
                },
            }
        ]
    }


def jsonable(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def run_configuration_checks(doc: str, label: str, run_checks, argv: list[str] | None = None, session=None) -> int:
    """The ``main`` of a verify script whose checks are configuration only: parse, open the stack, check, summarise."""
    args = base_parser(doc).parse_args(argv)
    report = Report(label)
    dep = open_deployment(args, report, session=session)
    if dep is not None:
        run_checks(dep, report)
    return report.summary()
