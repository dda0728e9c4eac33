"""Deployment check: one IAM role per service, least privilege, checked by evaluating the policies.

    pipenv run python tests/verify_iam_roles.py [--env dev] [--stack-name fraud-dev] [--endpoint-url URL]

The roles' inline and attached policies are read from IAM and evaluated here (the emulator cannot
simulate IAM): Effect / Action / NotAction / Resource / NotResource / Condition with wildcards, an
explicit Deny winning over any Allow. For each role: no wildcard in any allowed action, ``Resource: "*"``
only for actions that have no resource-level permissions, every (action, resource, context) its
service needs is allowed, and a list of things it must not do is not.
"""

from __future__ import annotations

import fnmatch
import json
import sys
import urllib.parse
from dataclasses import dataclass, field

from verify_common import Report, expect, run_configuration_checks

# Actions AWS only grants on Resource "*".
UNSCOPABLE_ACTIONS = {"ecr:getauthorizationtoken", "cloudwatch:putmetricdata", "xray:puttracesegments"}


# ------------------------------------------------------------------------------ policy evaluation
def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    # IAM wildcards: * and ? only ([ ] are literal)
    pattern = pattern.replace("[", "[[]")
    return fnmatch.fnmatchcase(value, pattern)


def _condition_matches(operator: str, key_values: dict, context: dict) -> bool:
    """One condition operator block: every key must match (AND); values of one key are ORed."""
    op = operator
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    qualifier = None
    if ":" in op:
        qualifier, op = op.split(":", 1)
    for key, wanted in key_values.items():
        wanted = [str(w) for w in _as_list(wanted)]
        present = key.lower() in {k.lower() for k in context}
        actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
        negated = op.startswith(("StringNot", "ArnNot", "NumericNotEquals")) or op == "Null"
        if op == "Null":
            if (str(wanted[0]).lower() == "true") != (not present):
                return False
            continue
        if not present:
            if if_exists or negated:
                continue
            return False
        actual_values = [str(v) for v in _as_list(actual)]

        def one(a: str, wanted: list[str] = wanted) -> bool:
            if op in ("StringEquals", "ArnEquals"):
                return a in wanted
            if op == "StringEqualsIgnoreCase":
                return a.lower() in (w.lower() for w in wanted)
            if op in ("StringLike", "ArnLike"):
                return any(_glob(w, a, case_sensitive=True) for w in wanted)
            if op in ("StringNotEquals", "ArnNotEquals"):
                return a not in wanted
            if op in ("StringNotLike", "ArnNotLike"):
                return not any(_glob(w, a, case_sensitive=True) for w in wanted)
            if op == "Bool":
                return a.lower() in (w.lower() for w in wanted)
            if op.startswith("Numeric"):
                x = float(a)
                cmp = {
                    "NumericEquals": lambda w: x == w,
                    "NumericNotEquals": lambda w: x != w,
                    "NumericLessThan": lambda w: x < w,
                    "NumericLessThanEquals": lambda w: x <= w,
                    "NumericGreaterThan": lambda w: x > w,
                    "NumericGreaterThanEquals": lambda w: x >= w,
                }[op]
                return any(cmp(float(w)) for w in wanted)
            raise ValueError(f"condition operator {operator} is not supported by this checker")

        if qualifier == "ForAllValues":
            ok = all(one(a) for a in actual_values)
        else:  # single-valued keys and ForAnyValue
            ok = any(one(a) for a in actual_values)
        if not ok:
            return False
    return True


@dataclass
class Statement:
    effect: str
    actions: list[str] = field(default_factory=list)
    not_actions: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    not_resources: list[str] = field(default_factory=list)
    conditions: dict = field(default_factory=dict)
    source: str = ""

    @classmethod
    def parse(cls, raw: dict, source: str) -> Statement:
        return cls(
            effect=raw.get("Effect", "Allow"),
            actions=[str(a) for a in _as_list(raw.get("Action"))],
            not_actions=[str(a) for a in _as_list(raw.get("NotAction"))],
            resources=[str(r) for r in _as_list(raw.get("Resource"))],
            not_resources=[str(r) for r in _as_list(raw.get("NotResource"))],
            conditions=raw.get("Condition") or {},
            source=source,
        )

    def matches(self, action: str, resource: str, context: dict) -> bool:
        if self.actions:
            if not any(_glob(a, action, case_sensitive=False) for a in self.actions):
                return False
        elif self.not_actions:
            if any(_glob(a, action, case_sensitive=False) for a in self.not_actions):
                return False
        else:
            return False
        if self.resources:
            if not any(_glob(r, resource, case_sensitive=True) for r in self.resources):
                return False
        elif self.not_resources:
            if any(_glob(r, resource, case_sensitive=True) for r in self.not_resources):
                return False
        else:
            return False
        return all(_condition_matches(op, kv, context) for op, kv in self.conditions.items())


class PolicySet:
    """Identity policies of one principal: allowed iff some Allow matches and no Deny matches."""

    def __init__(self, documents: dict[str, dict]) -> None:
        self.statements: list[Statement] = []
        for name, doc in documents.items():
            for raw in _as_list(doc.get("Statement")):
                self.statements.append(Statement.parse(raw, name))

    def decide(self, action: str, resource: str, context: dict | None = None) -> tuple[bool, str]:
        context = context or {}
        allow = None
        for st in self.statements:
            if st.matches(action, resource, context):
                if st.effect == "Deny":
                    return False, f"explicit deny in {st.source}"
                allow = allow or st.source
        return (True, f"allowed by {allow}") if allow else (False, "implicit deny")

    def allows(self, action: str, resource: str, context: dict | None = None) -> bool:
        return self.decide(action, resource, context)[0]

    def wildcard_actions(self) -> list[str]:
        bad = []
        for st in self.statements:
            if st.effect != "Allow":
                continue
            bad += [f"{st.source}: Action {a}" for a in st.actions if "*" in a or "?" in a]
            bad += [f"{st.source}: NotAction {a} (Allow+NotAction grants everything else)" for a in st.not_actions]
        return bad

    def unscoped_resources(self) -> list[str]:
        bad = []
        for st in self.statements:
            if st.effect != "Allow":
                continue
            if "*" in st.resources or st.not_resources:
                too_broad = [a for a in st.actions if a.lower() not in UNSCOPABLE_ACTIONS]
                too_broad += [f"NotAction {a}" for a in st.not_actions]
                if too_broad or st.not_resources:
                    bad.append(f"{st.source}: Resource '*' for {too_broad or st.not_resources}")
        return bad


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
    """Per role output: trusted service, what it must be able to do, and what it must not."""
    region, account, bucket = dep.region, dep.account, dep.bucket
    b = f"arn:aws:s3:::{bucket}"
    job = f"arn:aws:glue:{region}:{account}:job/{dep.output('GlueJobName')}"
    glue_arn = f"arn:aws:glue:{region}:{account}"
    idem = dep.table_arn(dep.output("IdempotencyTableName"))
    plog = dep.table_arn(dep.output("PredictionLogTableName"))
    hist = dep.table_arn(dep.output("CardHistoryTableName"))
    fn = dep.outputs.get("RetrainFunctionName", f"fraud-retrain-{dep.output('EnvName')}")
    logs = f"arn:aws:logs:{region}:{account}:log-group"
    dlq = dep.output("RetrainDlqArn")
    card_secret, api_secret = dep.output("CardHashKeySecretArn"), dep.output("ApiKeysSecretArn")
    repo = dep.output("ApiRepositoryUri").rsplit("/", 1)[1]
    repo_arn = f"arn:aws:ecr:{region}:{account}:repository/{repo}"
    api_log = f"{logs}:/ecs/fraud-api-{dep.output('EnvName')}"
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
            "can": [
                ("s3:GetObject", f"{b}/code/glue/train_job.py", {}, "read its script"),
                ("s3:GetObject", f"{b}/code/glue/fraud_detection.zip", {}, "read its code archive"),
                ("s3:GetObject", f"{b}/raw/2019/data.csv", {}, "read accepted input"),
                ("s3:ListBucket", b, {"s3:prefix": "raw/"}, "list raw/"),
                ("s3:ListBucket", b, {}, "HeadObject of a missing output answers 404, not 403"),
                ("glue:GetDatabase", f"{glue_arn}:database/global_temp", {}, "Spark's session catalog"),
                ("s3:PutObject", f"{b}/curated/transactions/year=2019/month=1/p.parquet", {}, "write curated"),
                ("s3:DeleteObject", f"{b}/curated/transactions/year=2019/month=1/p.parquet", {}, "overwrite curated"),
                ("s3:PutObject", f"{b}/features/year=2019/month=1/p.parquet", {}, "write features"),
                ("s3:PutObject", f"{b}/models/20240101T000000-abc/model.joblib", {}, "publish a model"),
                ("s3:PutObject", f"{b}/models/latest.json", {}, "move the latest pointer"),
                ("s3:GetObject", f"{b}/models/latest.json", {}, "read the champion"),
                ("s3:PutObject", f"{b}/reports/validation/index.html", {}, "write reports"),
                ("s3:PutObject", f"{b}/quarantine/bad.csv.reason.json", {}, "quarantine rows"),
                ("s3:PutObject", f"{b}/runs/run-1.json", {}, "record runs"),
                ("glue:GetDatabase", f"{glue_arn}:database/fraud", {}, "use the catalog database"),
                ("glue:GetTable", f"{glue_arn}:table/fraud/transactions", {}, "read tables"),
                ("glue:CreateTable", f"{glue_arn}:table/fraud/features", {}, "saveAsTable"),
                ("glue:BatchCreatePartition", f"{glue_arn}:table/fraud/features", {}, "add partitions"),
                ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "FraudDetection"}, "publish TestRocAuc"),
                ("logs:PutLogEvents", f"{logs}:/aws-glue/jobs/logs-v2:log-stream:jr_1", {}, "continuous logs"),
                ("secretsmanager:GetSecretValue", card_secret, {}, "hash card numbers like the API"),
            ],
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
            "can": [
                ("s3:GetObject", f"{b}/code/glue/live_drift_job.py", {}, "read its script"),
                ("s3:GetObject", f"{b}/code/glue/fraud_detection.zip", {}, "read its code archive"),
                ("s3:GetObject", f"{b}/models/latest.json", {}, "find the champion"),
                ("s3:GetObject", f"{b}/models/20240101T000000-abc/model.joblib", {}, "score the test period"),
                ("s3:GetObject", f"{b}/features/year=2019/month=7/p.parquet", {}, "read the test-period features"),
                ("s3:ListBucket", b, {"s3:prefix": "features/year=2019/"}, "list the features table"),
                ("s3:ListBucket", b, {}, "HeadObject of a missing output answers 404, not 403"),
                ("glue:GetDatabase", f"{glue_arn}:database/global_temp", {}, "Spark's session catalog"),
                ("s3:ListBucket", b, {"s3:prefix": "reports/drift/live-reference/"}, "look up the cached profile"),
                ("s3:GetObject", f"{b}/reports/drift/live-reference/v1.json", {}, "read the cached profile"),
                ("s3:PutObject", f"{b}/reports/drift/live-reference/v1.json", {}, "cache the profile"),
                ("s3:PutObject", f"{b}/reports/drift/live-20240101T040000Z/report.json", {}, "write its report"),
                ("glue:GetTable", f"{glue_arn}:table/fraud/features", {}, "resolve the features table"),
                ("glue:GetPartitions", f"{glue_arn}:table/fraud/features", {}, "read its partitions"),
                ("dynamodb:Scan", plog, {}, "read the prediction log window"),
                ("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "FraudDetection"}, "publish DriftFound"),
                ("logs:PutLogEvents", f"{logs}:/aws-glue/jobs/logs-v2:log-stream:jr_1", {}, "continuous logs"),
            ],
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
            "can": [
                ("s3:GetObject", f"{b}/landing/new.csv", {}, "read the new file"),
                ("s3:PutObject", f"{b}/raw/new.csv", {}, "copy accepted files to raw/"),
                ("s3:PutObject", f"{b}/quarantine/bad.csv", {}, "quarantine rejected files"),
                ("s3:PutObject", f"{b}/quarantine/bad.csv.reason.json", {}, "say why"),
                ("s3:PutObject", f"{b}/runs/x.json", {}, "record the run"),
                ("s3:DeleteObject", f"{b}/landing/new.csv", {}, "move out of landing/"),
                ("s3:ListBucket", b, {"s3:prefix": "raw/"}, "check for duplicates"),
                ("dynamodb:GetItem", idem, {}, "idempotency"),
                ("dynamodb:PutItem", idem, {}, "idempotency"),
                ("dynamodb:UpdateItem", idem, {}, "idempotency"),
                ("glue:StartJobRun", job, {}, "start training"),
                ("glue:GetJobRuns", job, {}, "see running trainings"),
                ("logs:PutLogEvents", f"{logs}:/aws/lambda/{fn}:log-stream:2024/01/01/x", {}, "its logs"),
                ("logs:CreateLogStream", f"{logs}:/aws/lambda/{fn}:log-stream:2024/01/01/x", {}, "its logs"),
                ("sqs:SendMessage", dlq, {}, "on-failure destination"),
            ],
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
            "can": [
                ("s3:GetObject", f"{b}/models/latest.json", {}, "follow the pointer"),
                ("s3:GetObject", f"{b}/models/20240101T000000-abc/model.joblib", {}, "load the model"),
                ("s3:ListBucket", b, {"s3:prefix": "models/"}, "list models"),
                ("dynamodb:PutItem", plog, {}, "log predictions"),
                ("dynamodb:Query", hist, {}, "read card history"),
                ("dynamodb:PutItem", hist, {}, "append card history"),
            ],
            "cannot": nobody
            + [
                ("s3:PutObject", f"{b}/models/latest.json", {}, "the API cannot publish models"),
                ("s3:PutObject", f"{b}/models/v/model.joblib", {}, "the API cannot write models/"),
                ("s3:GetObject", f"{b}/raw/a.csv", {}, "no training data"),
                ("s3:ListBucket", b, {"s3:prefix": "raw/"}, "list models/ only"),
                ("s3:ListBucket", b, {}, "no unrestricted listing"),
                ("dynamodb:PutItem", idem, {}, "not the Lambda's table"),
                ("dynamodb:Scan", plog, {}, "no bulk reads of the prediction log"),
                ("glue:StartJobRun", job, {}, "the API cannot start training"),
                ("secretsmanager:GetSecretValue", card_secret, {}, "secrets arrive via the execution role"),
            ],
        },
        "ApiExecutionRoleArn": {
            "service": "ecs-tasks.amazonaws.com",
            "can": [
                ("ecr:GetAuthorizationToken", "*", {}, "log in to ECR"),
                ("ecr:BatchGetImage", repo_arn, {}, "pull the image"),
                ("ecr:GetDownloadUrlForLayer", repo_arn, {}, "pull layers"),
                ("logs:PutLogEvents", f"{api_log}:log-stream:api/api/abc", {}, "container logs"),
                ("secretsmanager:GetSecretValue", card_secret, {}, "inject FRAUD_CARD_HASH_KEY"),
                ("secretsmanager:GetSecretValue", api_secret, {}, "inject FRAUD_API_KEYS"),
            ],
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


def run_checks(dep, report: Report) -> None:
    iam = dep.client("iam")
    plan = expectations(dep)
    arns = {key: dep.output(key) for key in plan}
    with report.check("one role per service") as note:
        expect(len(set(arns.values())) == len(arns), f"roles are shared: {arns}")
        note["detail"] = ", ".join(a.rsplit("/", 1)[-1] for a in arns.values())
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
            for st in _as_list(trust.get("Statement")):
                if st.get("Effect") == "Allow":
                    p = st.get("Principal", {})
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
        with report.check(f"{role_name}: can do what its service needs") as note:
            missing = [f"{a} on {r}{' ' + json.dumps(c) if c else ''} ({why})"
                       for a, r, c, why in spec["can"] if not policies.allows(a, r, c)]  # fmt: skip
            expect(not missing, "denied: " + "; ".join(missing))
            note["detail"] = f"{len(spec['can'])} required permissions"
        with report.check(f"{role_name}: cannot do what it must not") as note:
            extra = [f"{a} on {r}{' ' + json.dumps(c) if c else ''} ({why}; {policies.decide(a, r, c)[1]})"
                     for a, r, c, why in spec["cannot"] if policies.allows(a, r, c)]  # fmt: skip
            expect(not extra, "allowed: " + "; ".join(extra))
            note["detail"] = f"{len(spec['cannot'])} forbidden permissions"


def main(argv: list[str] | None = None, session=None) -> int:
    return run_configuration_checks(__doc__, "iam", run_checks, argv, session)


if __name__ == "__main__":
    sys.exit(main())
