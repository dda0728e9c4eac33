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
With ``--endpoint-url`` (moto server) steps 2 and 4 go through ``infra.emulator`` instead of
CloudFormation: moto's CloudFormation skips Glue, autoscaling, bucket notifications and Fargate settings.
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
    "train_job.py": "code/glue/train_job.py",
    "live_drift_job.py": "code/glue/live_drift_job.py",
    "fraud_detection.zip": "code/glue/fraud_detection.zip",
    "retrain.zip": "code/lambda/retrain.zip",
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
def _cfn_parameters(values: dict[str, str], existing: set[str]) -> list[dict]:
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]
    for name in existing - set(values):
        params.append({"ParameterKey": name, "UsePreviousValue": True})
    return params


def _stack(cfn, name: str) -> dict | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def cloudformation_apply(cfn, stack_name: str, parameters: dict[str, str], env: str) -> dict[str, str]:
    """Create or update the stack and wait; returns its outputs."""
    body = TEMPLATE.read_text()
    stack = _stack(cfn, stack_name)
    common = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Capabilities": ["CAPABILITY_NAMED_IAM"],
        "Tags": [{"Key": "fraud:env", "Value": env}],
    }
    if stack is None or stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        print(f"  creating stack {stack_name} ...")
        cfn.create_stack(Parameters=_cfn_parameters(parameters, set()), OnFailure="ROLLBACK", **common)
        cfn.get_waiter("stack_create_complete").wait(
            StackName=stack_name, WaiterConfig={"Delay": 15, "MaxAttempts": 160}
        )
    else:
        existing = {p["ParameterKey"] for p in stack.get("Parameters", [])}
        print(f"  updating stack {stack_name} ...")
        try:
            cfn.update_stack(Parameters=_cfn_parameters(parameters, existing), **common)
        except cfn.exceptions.ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            print("  stack already up to date")
        else:
            cfn.get_waiter("stack_update_complete").wait(
                StackName=stack_name, WaiterConfig={"Delay": 15, "MaxAttempts": 160}
            )
    stack = _stack(cfn, stack_name) or {}
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


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
    p.add_argument("--endpoint-url", default=None, help="AWS endpoint override: the local emulator (moto server)")
    p.add_argument("--vpc-id")
    p.add_argument("--private-subnets", help="comma-separated subnet ids for the Fargate tasks")
    p.add_argument("--public-subnets", help="comma-separated subnet ids for the load balancer")
    p.add_argument("--certificate-arn", help="ACM certificate of the HTTPS listener")
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
    args: argparse.Namespace, session=None, artifacts: Artifacts | None = None, template: dict | None = None
) -> dict[str, str]:
    """Package, upload, create/update; ``template`` (emulator only) replaces infra/template.yaml, for tests."""
    import boto3

    session = session or boto3.Session(region_name=args.region)
    stack_name = args.stack_name or f"fraud-{args.env}"
    client_kw = {"region_name": args.region, "endpoint_url": args.endpoint_url}
    s3 = session.client("s3", **client_kw)
    params = template_parameters(args)

    print("[1/5] packaging")
    artifacts = artifacts or package(args.dist, lambda_dependencies=not args.no_lambda_deps)
    params["AdditionalPythonModules"] = artifacts.additional_python_modules

    if args.endpoint_url:
        from infra.emulator import EmulatorProvisioner

        provisioner = EmulatorProvisioner(session, args.endpoint_url, args.region)

        def apply(values: dict[str, str]) -> dict[str, str]:
            return provisioner.provision(stack_name, values, template=template)

        exists = _stack(session.client("cloudformation", **client_kw), stack_name) is not None
    else:
        if template is not None:
            raise DeployError("a replacement template is for the emulator only")
        cfn = session.client("cloudformation", **client_kw)

        def apply(values: dict[str, str]) -> dict[str, str]:
            return cloudformation_apply(cfn, stack_name, values, args.env)

        exists = _stack(cfn, stack_name) is not None

    target = args.endpoint_url or f"account, region {args.region}"
    if not exists:
        print(f"[2/5] bootstrap stack {stack_name} ({target})")
        outputs = apply({**params, "LambdaCodeVersion": ""})
    else:
        print(f"[2/5] stack {stack_name} exists ({target})")
        outputs = _outputs(session.client("cloudformation", **client_kw), stack_name)
    bucket = outputs["BucketName"]

    print(f"[3/5] uploading code to s3://{bucket}/code/")
    versions = upload(s3, bucket, artifacts)
    lambda_version = versions[CODE_KEYS["retrain.zip"]]
    if not lambda_version:
        raise DeployError(f"s3://{bucket} returned no object version: bucket versioning is off")

    print(f"[4/5] deploying stack {stack_name} with Lambda code version {lambda_version}")
    outputs = apply({**params, "LambdaCodeVersion": lambda_version})

    print("[5/5] API image: build and push with")
    tag = args.api_image_tag or git_tag()
    for line in docker_commands(outputs["ApiRepositoryUri"], tag, args.region):
        print(f"    {line}")
    if not args.api_image_tag:
        print(f"  then deploy again with --api-image-tag {tag} to start the service")
    if args.new_api_key:
        sm = session.client("secretsmanager", **client_kw)
        key = add_api_key(sm, outputs["ApiKeysSecretArn"], args.new_api_key)
        print(f"  new API key {args.new_api_key!r} (shown once, store it now): {key}")
        print("  running tasks pick it up when they restart (aws ecs update-service --force-new-deployment)")
    return outputs


def _outputs(cfn, stack_name: str) -> dict[str, str]:
    stack = _stack(cfn, stack_name) or {}
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def run(args: argparse.Namespace) -> int:
    outputs = deploy(args)
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
