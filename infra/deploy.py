"""Package every deployable, upload it to the bucket, and create or update the CloudFormation stack.

    python -m fraud_cli deploy --env dev --vpc-id vpc-... --private-subnets subnet-a,subnet-b \\
        --public-subnets subnet-c,subnet-d --certificate-arn arn:aws:acm:...   [--api-image-tag TAG]

Sequence (the same against a real account and against the local emulator):
1. package: the Glue scripts, code archive and module list (``glue/build_package.py``), the Lambda zip
   (``retrain_lambda/`` + the ``fraud_detection`` modules it imports + the pinned pure-runtime dependencies);
2. bootstrap: if the stack does not exist yet, create it without the Lambda (the bucket must exist before
   the function's code can be uploaded into it);
3. upload ``code/glue/*`` and ``code/lambda/retrain.zip`` to the bucket (skipped when unchanged);
4. update the stack with the Lambda code version (S3 object version, so new code redeploys the function);
5. print the ``docker build`` / ``docker push`` commands for the API image (``api/Dockerfile``).
Steps 2 and 4 go through a ``Provisioner``: ``CloudFormationProvisioner`` by default (the template
through S3 as ``TemplateURL``, a failed first create deleted and created again); the local emulator's
provisioner is injected by its own entry point (``python -m tools.emulator.deploy``) and by the tests.
``--endpoint-url`` points every client at another endpoint (e.g. the emulator's CloudFormation).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from fraud_detection import layout

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
DEFAULT_DIST = ROOT / "dist"
LAMBDA_PACKAGES = ("retrain_lambda", "fraud_detection")
# The Lambda ships retrain_lambda/ and only the fraud_detection modules it imports (infra/import_closure.py):
# the rest of the library needs numpy / scikit-learn, which the Lambda does not have.
LAMBDA_ENTRY = ("retrain_lambda",)
# Imported by the Lambda code and absent from the python3.11 runtime (boto3 is provided there).
LAMBDA_DEPENDENCIES = (
    "pydantic",
    "pydantic-core",
    "pydantic-settings",
    "annotated-types",
    "typing-extensions",
    "typing-inspection",
    "python-dotenv",
)
CODE_KEYS = {
    "train_job.py": f"{layout.GLUE_CODE}/train_job.py",
    "live_drift_job.py": f"{layout.GLUE_CODE}/live_drift_job.py",
    "fraud_detection.zip": f"{layout.GLUE_CODE}/fraud_detection.zip",
    "retrain.zip": f"{layout.LAMBDA_CODE}/retrain.zip",
}
GLUE_FILES = ("train_job.py", "live_drift_job.py", "fraud_detection.zip", "additional_python_modules.txt")
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so unchanged code gives an identical archive (and no redeploy)


class DeployError(RuntimeError):
    pass


@dataclass
class Artifacts:
    train_job: Path
    glue_archive: Path
    additional_python_modules: str
    lambda_zip: Path
    live_drift_job: Path

    def files(self) -> dict[str, Path]:
        return {
            "train_job.py": self.train_job,
            "live_drift_job.py": self.live_drift_job,
            "fraud_detection.zip": self.glue_archive,
            "retrain.zip": self.lambda_zip,
        }


# ------------------------------------------------------------------------------ packaging
def build_glue(out_dir: Path) -> dict[str, Path]:
    """The lead's ``glue/build_package.py``: ``build(out_dir) -> {name: path}``."""
    script = ROOT / "glue" / "build_package.py"
    if not script.exists():
        raise DeployError(f"{script} is missing: it builds the Glue script, archive and module list")
    spec = importlib.util.spec_from_file_location("glue_build_package", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    built = module.build(out_dir)
    by_name = {Path(p).name: Path(p) for p in built.values()}
    missing = {*GLUE_FILES} - set(by_name)
    if missing:
        raise DeployError(f"glue/build_package.py did not produce {sorted(missing)}")
    return by_name


def _locked_requirements(names: tuple[str, ...]) -> list[str]:
    """``name==version --hash=...`` lines from Pipfile.lock's [packages]: pip checks what it downloads."""
    pinned = json.loads((ROOT / "Pipfile.lock").read_text()).get("default", {})
    missing = [name for name in names if name not in pinned]
    if missing:
        raise DeployError(f"the Lambda's dependencies {missing} are not in Pipfile.lock's [packages]")
    return [
        " ".join([f"{name}{pinned[name]['version']}", *(f"--hash={h}" for h in pinned[name].get("hashes", []))])
        for name in names
    ]


def _zip_file_into(zf: zipfile.ZipFile, base: Path, path: Path) -> None:
    info = zipfile.ZipInfo(path.relative_to(base).as_posix(), _ZIP_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, path.read_bytes())


def _zip_dir_into(zf: zipfile.ZipFile, base: Path, src: Path) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        _zip_file_into(zf, base, path)


def lambda_code_files() -> list[Path]:
    """The project files the Lambda zip holds (relative to the repository root)."""
    from infra.import_closure import closure

    return closure(ROOT, LAMBDA_ENTRY, LAMBDA_PACKAGES)


def build_lambda_zip(out_dir: Path, *, with_dependencies: bool = True) -> Path:
    """``retrain_lambda/`` + the ``fraud_detection`` modules it imports (+ Linux x86_64 wheels of the pinned
    dependencies, for CPython 3.11: the function's runtime)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [p for p in LAMBDA_PACKAGES if not (ROOT / p).is_dir()]
    if missing:
        raise DeployError(f"cannot package the Lambda: {missing} not found under {ROOT}")
    target = out_dir / "retrain.zip"
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as req_dir, \
            zipfile.ZipFile(target, "w") as zf:  # fmt: skip
        if with_dependencies:
            requirements = Path(req_dir) / "requirements.txt"
            requirements.write_text("\n".join(_locked_requirements(LAMBDA_DEPENDENCIES)) + "\n")
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes", "--target", tmp,
                 "--platform", "manylinux2014_x86_64", "--python-version", "3.11", "--implementation", "cp",
                 "--only-binary=:all:", "-r", str(requirements)],
                check=True,
            )  # fmt: skip
            for entry in sorted(Path(tmp).iterdir()):
                if entry.name == "bin":  # console scripts (dotenv's) name the build machine's python: useless
                    continue
                if entry.is_dir():
                    _zip_dir_into(zf, Path(tmp), entry)
                else:
                    _zip_file_into(zf, Path(tmp), entry)
        for rel in lambda_code_files():
            _zip_file_into(zf, ROOT, ROOT / rel)
    return target


def package(dist: Path, *, lambda_dependencies: bool = True) -> Artifacts:
    glue = build_glue(dist / "glue")
    lam = build_lambda_zip(dist / "lambda", with_dependencies=lambda_dependencies)
    modules = glue["additional_python_modules.txt"].read_text().strip()
    return Artifacts(glue["train_job.py"], glue["fraud_detection.zip"], modules, lam, glue["live_drift_job.py"])


# ------------------------------------------------------------------------------ upload
def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def upload(s3, bucket: str, artifacts: Artifacts) -> dict[str, str]:
    """Put the code under ``code/``; returns {key: version id}. Unchanged files are not uploaded again."""
    versions = {}
    for name, path in artifacts.files().items():
        key = CODE_KEYS[name]
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError:
            head = None
        if head is not None and head.get("ETag", "").strip('"') == _md5(path) and head.get("VersionId"):
            versions[key] = head["VersionId"]
            print(f"  unchanged  s3://{bucket}/{key}")
            continue
        with path.open("rb") as fh:
            put = s3.put_object(Bucket=bucket, Key=key, Body=fh)
        versions[key] = put.get("VersionId") or ""
        print(f"  uploaded   s3://{bucket}/{key} ({path.stat().st_size:,} bytes)")
    return versions


# ------------------------------------------------------------------------------ stack
class Provisioner(Protocol):
    """Creates or updates the stack from ``infra/template.yaml`` and reports its outputs.

    ``CloudFormationProvisioner`` does it in an account; tests and the local emulator inject their own
    (``tools/emulator``), so this module has no branch into emulator code.
    """

    def current_outputs(self, stack_name: str) -> dict[str, str] | None:
        """Outputs of a usable stack; None when there is none yet (or only a failed first create)."""
        ...

    def apply(self, stack_name: str, parameters: dict[str, str]) -> dict[str, str]:
        """Create or update the stack with these parameters and wait; returns its outputs."""
        ...


# CreateStack / UpdateStack limits (AWS CloudFormation quotas):
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html
TEMPLATE_BODY_LIMIT = 51_200  # bytes, TemplateBody
TEMPLATE_URL_LIMIT = 1_000_000  # bytes, a template in S3 passed as TemplateURL
# Stacks with no resources that CloudFormation will not update: a first create that failed and rolled
# back (only deleting it is allowed), and one made by a change set never executed.
RECREATE_STATES = {
    "ROLLBACK_COMPLETE": "its first create failed and rolled back, so it cannot be updated",
    "REVIEW_IN_PROGRESS": "it was made by a change set that was never executed",
}
# States only a person can resolve; each with what to do.
STUCK_STATES = {
    "ROLLBACK_FAILED": "the failed first create could not roll back. Delete the stack (aws cloudformation "
    "delete-stack --stack-name {stack}, with --retain-resources for any that cannot be deleted), then deploy again",
    "DELETE_FAILED": "a delete did not finish. Delete it again (aws cloudformation delete-stack --stack-name "
    "{stack}, with --retain-resources for any that cannot be deleted), then deploy again",
    "UPDATE_ROLLBACK_FAILED": "an update could not roll back. Run aws cloudformation continue-update-rollback "
    "--stack-name {stack} (with --resources-to-skip for resources that cannot roll back), then deploy again",
    "UPDATE_FAILED": "an update failed without rollback. Roll it back (aws cloudformation rollback-stack "
    "--stack-name {stack}) or fix the cause and deploy again",
    "CREATE_FAILED": "the first create failed without rollback. Delete the stack (aws cloudformation "
    "delete-stack --stack-name {stack}), then deploy again",
    "IMPORT_ROLLBACK_FAILED": "a resource import could not roll back. Fix it in the CloudFormation console, "
    "then deploy again",
}
REQUIRED_OUTPUTS = ("BucketName", "ApiRepositoryUri")
# Template parameters without a default, and the option that sets each.
PARAMETER_OPTIONS = {
    "VpcId": "--vpc-id",
    "PrivateSubnetIds": "--private-subnets",
    "PublicSubnetIds": "--public-subnets",
    "CertificateArn": "--certificate-arn",
    "ApiDomainName": "--api-domain-name",
}


def required_parameters(template_path: Path) -> set[str]:
    """Names of the template's parameters that have no default (read without resolving any intrinsic)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # intrinsics do not matter here
    params = yaml.load(template_path.read_text(), Loader=_Loader).get("Parameters", {})  # noqa: S506 - SafeLoader
    return {name for name, spec in params.items() if "Default" not in spec}


def check_required(template_path: Path, given: dict[str, str], previous: set[str]) -> None:
    missing = sorted(required_parameters(template_path) - set(given) - previous)
    if missing:
        named = ", ".join(f"{m} ({PARAMETER_OPTIONS.get(m, '--parameter ' + m + '=...')})" for m in missing)
        raise DeployError(f"the template needs values for {named}")


def _cfn_parameters(values: dict[str, str], existing: set[str]) -> list[dict]:
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]
    for name in existing - set(values):
        params.append({"ParameterKey": name, "UsePreviousValue": True})
    return params


def require_outputs(outputs: dict[str, str], stack_name: str, names: tuple[str, ...] = REQUIRED_OUTPUTS) -> None:
    missing = [n for n in names if not outputs.get(n)]
    if missing:
        raise DeployError(
            f"stack {stack_name} has no output {', '.join(missing)}: it was not created from infra/template.yaml "
            "(or an older version of it). Deploy with this checkout's template, or delete the stack."
        )


class CloudFormationProvisioner:
    """The stack through CloudFormation; the template goes through S3 (``TemplateURL``).

    The template is larger than CreateStack's ``TemplateBody`` limit, and the stack's own data bucket does
    not exist before the stack does, so the template is uploaded to a small deployment bucket of its
    own, ``fraud-deployment-<account>-<region>``, which ``ensure_deployment_bucket`` creates when missing
    and keeps versioned, encrypted, private and TLS-only. CloudFormation reads it with the caller's
    credentials when the call is made; old templates expire after ``TEMPLATE_EXPIRY_DAYS``.
    """

    TEMPLATE_PREFIX = "templates/"
    TEMPLATE_EXPIRY_DAYS = 90

    def __init__(
        self,
        session,
        region: str,
        env: str,
        *,
        endpoint_url: str | None = None,
        template_path: Path = TEMPLATE,
        deployment_bucket: str | None = None,
        wait_delay_s: int = 15,
        wait_max_attempts: int = 160,
    ) -> None:
        kw = {"region_name": region, "endpoint_url": endpoint_url}
        self.cfn = session.client("cloudformation", **kw)
        self.s3 = session.client("s3", **kw)
        self.sts = session.client("sts", **kw)
        self.region = region
        self.env = env
        self.template_path = template_path
        self._deployment_bucket = deployment_bucket
        self._waiter_config = {"Delay": wait_delay_s, "MaxAttempts": wait_max_attempts}
        self.partition = session.get_partition_for_region(region)

    # --- the deployment bucket and the template in it ------------------------------------------
    @property
    def deployment_bucket(self) -> str:
        if self._deployment_bucket is None:
            account = self.sts.get_caller_identity()["Account"]
            self._deployment_bucket = f"fraud-deployment-{account}-{self.region}"
        return self._deployment_bucket

    def ensure_deployment_bucket(self) -> str:
        """Create the bucket if missing; (re)apply its settings every time, so a half-made one is fixed."""
        from botocore.exceptions import ClientError

        bucket = self.deployment_bucket
        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise DeployError(
                    f"deployment bucket {bucket} exists but is not usable by these credentials ({code}); "
                    "pass another one with --deployment-bucket"
                ) from exc
            print(f"  creating deployment bucket {bucket}")
            if self.region == "us-east-1":
                self.s3.create_bucket(Bucket=bucket)
            else:
                self.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.region})
        self.s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        self.s3.put_bucket_ownership_controls(
            Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        )
        self.s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
            },
        )
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        self.s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "expire-old-templates",
                        "Status": "Enabled",
                        "Filter": {"Prefix": self.TEMPLATE_PREFIX},
                        "Expiration": {"Days": self.TEMPLATE_EXPIRY_DAYS},
                        "NoncurrentVersionExpiration": {"NoncurrentDays": 7},
                        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
                    }
                ]
            },
        )
        self.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deployment_bucket_policy(bucket, self.partition)))
        return bucket

    def template_url(self, stack_name: str) -> str:
        """Upload the template (content-addressed: an unchanged one is not uploaded again); its URL."""
        body = self.template_path.read_bytes()
        if len(body) > TEMPLATE_URL_LIMIT:
            raise DeployError(f"{self.template_path} is {len(body):,} bytes; CloudFormation reads at most "
                              f"{TEMPLATE_URL_LIMIT:,} from S3: split it into nested stacks")  # fmt: skip
        bucket = self.ensure_deployment_bucket()
        key = f"{self.TEMPLATE_PREFIX}{stack_name}/{hashlib.sha256(body).hexdigest()[:20]}.yaml"
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-yaml")
        # Virtual-hosted style, the form CloudFormation documents for TemplateURL.
        return f"https://{bucket}.s3.{self.region}.amazonaws.com/{key}"

    # --- the stack --------------------------------------------------------------------------------
    def _stack(self, name: str) -> dict | None:
        try:
            return self.cfn.describe_stacks(StackName=name)["Stacks"][0]
        except self.cfn.exceptions.ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise

    def _check_usable(self, stack: dict) -> str:
        status = stack["StackStatus"]
        name = stack["StackName"]
        if status in STUCK_STATES:
            raise DeployError(f"stack {name} is in {status}: {STUCK_STATES[status].format(stack=name)}")
        if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            raise DeployError(f"stack {name} is in {status}: another operation is running on it; wait for it to end "
                              f"(aws cloudformation describe-stacks --stack-name {name}) and deploy again")  # fmt: skip
        return status

    def current_outputs(self, stack_name: str) -> dict[str, str] | None:
        stack = self._stack(stack_name)
        if stack is None:
            return None
        status = self._check_usable(stack)
        if status in RECREATE_STATES:
            return None
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def _failure_reasons(self, stack_name: str, limit: int = 5) -> str:
        try:
            events = self.cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
        except self.cfn.exceptions.ClientError:
            return ""
        failed = [e for e in reversed(events) if str(e.get("ResourceStatus", "")).endswith("_FAILED")]
        reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '?')}" for e in failed[:limit]]
        return ("; first failures: " + " | ".join(reasons)) if reasons else ""

    def _wait(self, waiter: str, stack_name: str) -> None:
        from botocore.exceptions import WaiterError

        try:
            self.cfn.get_waiter(waiter).wait(StackName=stack_name, WaiterConfig=self._waiter_config)
        except WaiterError as exc:
            stack = self._stack(stack_name) or {}
            status = stack.get("StackStatus", "gone")
            advice = (
                "the next deploy deletes this failed first create and creates the stack again"
                if status in RECREATE_STATES
                else STUCK_STATES.get(status, "see the stack's events in the CloudFormation console").format(
                    stack=stack_name
                )
            )
            detail = (exc.last_response or {}).get("Error", {}).get("Message") or waiter
            raise DeployError(
                f"stack {stack_name} ended in {status} ({detail}){self._failure_reasons(stack_name)}. {advice}"
            ) from exc

    def apply(self, stack_name: str, parameters: dict[str, str]) -> dict[str, str]:
        stack = self._stack(stack_name)
        if stack is not None:
            status = self._check_usable(stack)
            if status in RECREATE_STATES:
                print(f"  stack {stack_name} is in {status}: {RECREATE_STATES[status]}; deleting it and creating it "
                      "again")  # fmt: skip
                self.cfn.delete_stack(StackName=stack_name)
                self._wait("stack_delete_complete", stack_name)
                stack = None
        previous = {p["ParameterKey"] for p in (stack or {}).get("Parameters", [])}
        check_required(self.template_path, parameters, previous)
        common = {
            "StackName": stack_name,
            "TemplateURL": self.template_url(stack_name),
            "Capabilities": ["CAPABILITY_NAMED_IAM"],
            "Tags": [{"Key": "fraud:env", "Value": self.env}],
        }
        if stack is None:
            print(f"  creating stack {stack_name} ...")
            self.cfn.create_stack(Parameters=_cfn_parameters(parameters, set()), OnFailure="ROLLBACK", **common)
            self._wait("stack_create_complete", stack_name)
        else:
            existing = {p["ParameterKey"] for p in stack.get("Parameters", [])}
            print(f"  updating stack {stack_name} ...")
            try:
                self.cfn.update_stack(Parameters=_cfn_parameters(parameters, existing), **common)
            except self.cfn.exceptions.ClientError as exc:
                if "No updates are to be performed" not in str(exc):
                    raise
                print("  stack already up to date")
            else:
                self._wait("stack_update_complete", stack_name)
        outputs = self.current_outputs(stack_name) or {}
        require_outputs(outputs, stack_name)
        return outputs


def deployment_bucket_policy(bucket: str, partition: str = "aws") -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def docker_commands(repository_uri: str, tag: str, region: str) -> list[str]:
    registry = repository_uri.split("/", 1)[0]
    return [
        f"aws ecr get-login-password --region {region} | docker login --username AWS --password-stdin {registry}",
        f"docker build -f api/Dockerfile -t {repository_uri}:{tag} .",
        f"docker push {repository_uri}:{tag}",
    ]


def git_tag() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
        )
        return out.stdout.strip() or "latest-build"
    except OSError:
        return "latest-build"


def add_api_key(sm, secret_arn: str, key_id: str) -> str:
    """Append a new API key entry to the keys secret; returns the key (shown once, stored nowhere)."""
    from api.auth import new_api_key

    key, entry = new_api_key(key_id)
    current = sm.get_secret_value(SecretId=secret_arn)["SecretString"].strip()
    entries = [e for e in current.split(",") if e.strip()] + [entry]
    sm.put_secret_value(SecretId=secret_arn, SecretString=",".join(entries))
    return key


# ------------------------------------------------------------------------------ entry point
def add_arguments(p: argparse.ArgumentParser) -> None:
    env_default = os.environ.get("FRAUD_ENV", "dev")
    p.add_argument("--env", default=env_default, help="environment name (FRAUD_ENV; default %(default)s)")
    p.add_argument("--stack-name", default=os.environ.get("FRAUD_STACK_NAME"), help="default fraud-<env>")
    p.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    )
    p.add_argument("--endpoint-url", default=None, help="AWS endpoint override for every client (e.g. an emulator)")
    p.add_argument(
        "--deployment-bucket",
        default=None,
        help="bucket for the stack template (default fraud-deployment-<account>-<region>; made if missing)",
    )
    p.add_argument("--vpc-id")
    p.add_argument("--private-subnets", help="comma-separated subnet ids for the Fargate tasks")
    p.add_argument("--public-subnets", help="comma-separated subnet ids for the load balancer")
    p.add_argument("--certificate-arn", help="ACM certificate of the HTTPS listener (for --api-domain-name)")
    p.add_argument("--api-domain-name", help="the API's host name, e.g. api.example.com (its URL: https://<name>)")
    p.add_argument("--hosted-zone-id", default=None, help="Route 53 zone of that name: adds an alias to the ALB")
    p.add_argument("--api-image-tag", default="", help="tag pushed to the stack's ECR repository; empty: 0 tasks")
    p.add_argument("--alarm-email", default=None)
    p.add_argument("--enable-waf", choices=["true", "false"], default=None)
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="any other template parameter")
    p.add_argument("--dist", type=Path, default=DEFAULT_DIST, help="build directory (default dist/)")
    p.add_argument("--no-lambda-deps", action="store_true", help="do not vendor pydantic etc. into the Lambda zip")
    p.add_argument("--new-api-key", metavar="KEY_ID", help="after deploying, add an API key and print it once")


def template_parameters(args: argparse.Namespace) -> dict[str, str]:
    params: dict[str, str] = {"EnvName": args.env}
    optional = {
        "VpcId": args.vpc_id,
        "PrivateSubnetIds": args.private_subnets,
        "PublicSubnetIds": args.public_subnets,
        "CertificateArn": args.certificate_arn,
        "ApiDomainName": args.api_domain_name,
        "HostedZoneId": args.hosted_zone_id,
        "ApiImageTag": args.api_image_tag,
        "AlarmEmail": args.alarm_email,
        "EnableWaf": args.enable_waf,
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    for item in args.parameter:
        key, sep, value = item.partition("=")
        if not sep:
            raise DeployError(f"--parameter wants KEY=VALUE, got {item!r}")
        params[key] = value
    return params


def deploy(
    args: argparse.Namespace,
    provisioner: Provisioner | None = None,
    session=None,
    artifacts: Artifacts | None = None,
) -> dict[str, str]:
    """Package, upload, create/update through ``provisioner`` (default: CloudFormation); returns the outputs."""
    import boto3

    session = session or boto3.Session(region_name=args.region)
    stack_name = args.stack_name or f"fraud-{args.env}"
    client_kw = {"region_name": args.region, "endpoint_url": args.endpoint_url}
    s3 = session.client("s3", **client_kw)
    params = template_parameters(args)
    provisioner = provisioner or CloudFormationProvisioner(
        session, args.region, args.env, endpoint_url=args.endpoint_url, deployment_bucket=args.deployment_bucket
    )

    print("[1/5] packaging")
    artifacts = artifacts or package(args.dist, lambda_dependencies=not args.no_lambda_deps)
    params["AdditionalPythonModules"] = artifacts.additional_python_modules

    target = args.endpoint_url or f"account, region {args.region}"
    outputs = provisioner.current_outputs(stack_name)
    if outputs is None:
        print(f"[2/5] bootstrap stack {stack_name} ({target})")
        outputs = provisioner.apply(stack_name, {**params, "LambdaCodeVersion": ""})
    else:
        print(f"[2/5] stack {stack_name} exists ({target})")
    require_outputs(outputs, stack_name)
    bucket = outputs["BucketName"]

    print(f"[3/5] uploading code to s3://{bucket}/{layout.CODE}/")
    versions = upload(s3, bucket, artifacts)
    lambda_version = versions[CODE_KEYS["retrain.zip"]]
    if not lambda_version:
        raise DeployError(f"s3://{bucket} returned no object version: bucket versioning is off")

    print(f"[4/5] deploying stack {stack_name} with Lambda code version {lambda_version}")
    outputs = provisioner.apply(stack_name, {**params, "LambdaCodeVersion": lambda_version})
    require_outputs(outputs, stack_name)

    print("[5/5] API image: build and push with")
    tag = args.api_image_tag or git_tag()
    for line in docker_commands(outputs["ApiRepositoryUri"], tag, args.region):
        print(f"    {line}")
    if not args.api_image_tag:
        print(f"  then deploy again with --api-image-tag {tag} to start the service")
    if args.new_api_key:
        require_outputs(outputs, stack_name, ("ApiKeysSecretArn",))
        sm = session.client("secretsmanager", **client_kw)
        key = add_api_key(sm, outputs["ApiKeysSecretArn"], args.new_api_key)
        print(f"  new API key {args.new_api_key!r} (shown once, store it now): {key}")
        print("  running tasks pick it up when they restart (aws ecs update-service --force-new-deployment)")
    return outputs


def run(args: argparse.Namespace, provisioner: Provisioner | None = None) -> int:
    try:
        outputs = deploy(args, provisioner)
    except DeployError as exc:
        print(f"deploy: FAILED - {exc}", file=sys.stderr)
        return 1
    print(f"deploy: stack {args.stack_name or 'fraud-' + args.env} ready; API at {outputs.get('ApiUrl', '?')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
