"""Fixtures: the local AWS emulator and the stack deployed into it from ``infra/template.yaml``.

The deployment goes through ``infra.deploy.deploy``, i.e. the same packaging, upload and bootstrap ->
full sequence as against a real account, with the emulator's provisioner injected: the resources are
created from the template's own definitions by ``tools.emulator.provisioner`` (moto's CloudFormation
skips too much to be trusted).
Broken variants are the same template with one property changed.
"""

from __future__ import annotations

import copy
import json
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
for p in (str(ROOT), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

from infra import deploy as deploy_mod  # noqa: E402
from tools.emulator.cfn import load_template  # noqa: E402
from tools.emulator.provisioner import EmulatorProvisioner  # noqa: E402
from tools.emulator.server import start  # noqa: E402

ENV = "ci"
STACK = f"fraud-{ENV}"
REGION = "us-east-1"
API_DOMAIN = "api.example.com"


@pytest.fixture(scope="session")
def emulator(tmp_path_factory) -> Iterator[str]:
    server, url = start(0)
    yield url
    server.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch):
    # Fake credentials for the emulator; never a real account from a test.
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


def reset(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - local emulator
    urllib.request.urlopen(req, timeout=10).read()  # noqa: S310


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> deploy_mod.Artifacts:
    """The real Glue build; the Lambda zip as the deploy builds it, vendored dependencies included."""
    dist = tmp_path_factory.mktemp("dist")
    glue = deploy_mod.build_glue(dist / "glue")
    lambda_zip = deploy_mod.build_lambda_zip(dist / "lambda", with_dependencies=True)
    modules = glue["additional_python_modules.txt"].read_text().strip()
    return deploy_mod.Artifacts(
        glue["train_job.py"], glue["fraud_detection.zip"], modules, lambda_zip, glue["live_drift_job.py"]
    )


@dataclass
class Deployed:
    url: str
    outputs: dict
    session: object
    lambda_zip: Path | None = None

    def argv(self, *extra: str) -> list[str]:
        return ["--env", ENV, "--stack-name", STACK, "--region", REGION, "--endpoint-url", self.url, *extra]

    def argv_for(self, module, *extra: str) -> list[str]:
        """``argv`` plus, for the Lambda check, the zip this deployment uploaded (not a dist/ in the checkout)."""
        if module.__name__ == "verify_lambda_function" and self.lambda_zip is not None:
            extra = ("--lambda-zip", str(self.lambda_zip), *extra)
        return self.argv(*extra)


def deploy_into(
    emulator: str, artifacts, dist: Path, mutate: Callable[[dict], None] | None = None, **options
) -> Deployed:
    """Reset the emulator and deploy the template (optionally mutated by ``mutate(template)``) into it."""
    import argparse

    import boto3

    reset(emulator)
    session = boto3.Session(region_name=REGION)
    ec2 = session.client("ec2", endpoint_url=emulator)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{'ab'[i % 2]}")["Subnet"][
            "SubnetId"
        ]
        for i in range(4)
    ]
    acm = session.client("acm", endpoint_url=emulator)
    cert = acm.request_certificate(DomainName="api.example.com")["CertificateArn"]
    parser = argparse.ArgumentParser()
    deploy_mod.add_arguments(parser)
    image_tag = options.get("image_tag", "ci-1")
    argv = [
        "--env", ENV, "--stack-name", STACK, "--region", REGION, "--endpoint-url", emulator,
        "--vpc-id", vpc, "--private-subnets", ",".join(subnets[:2]), "--public-subnets", ",".join(subnets[2:]),
        "--certificate-arn", cert, "--api-domain-name", API_DOMAIN, "--api-image-tag", image_tag,
        "--enable-waf", options.get("waf", "true"), "--no-lambda-deps", "--dist", str(dist),
    ]  # fmt: skip
    if options.get("alarm_email"):
        argv += ["--alarm-email", options["alarm_email"]]
    args = parser.parse_args(argv)
    template = None
    if mutate is not None:
        template = copy.deepcopy(load_template())
        mutate(template)
    provisioner = EmulatorProvisioner(session, emulator, REGION, template=template)
    outputs = deploy_mod.deploy(args, provisioner, session=session, artifacts=artifacts)
    # what `docker push` would have done: the image the task definition names is in the repository
    ecr = session.client("ecr", endpoint_url=emulator)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 2,
            "digest": "sha256:" + "0" * 64,
        },
        "layers": [],
    }
    repo = outputs["ApiRepositoryUri"].rsplit("/", 1)[1]
    ecr.put_image(repositoryName=repo, imageManifest=json.dumps(manifest), imageTag=image_tag)
    return Deployed(emulator, outputs, session, artifacts.lambda_zip)


@pytest.fixture
def deploy_stack(emulator, artifacts, tmp_path) -> Callable[..., Deployed]:
    def _deploy(mutate: Callable[[dict], None] | None = None, *, code=None, **options) -> Deployed:
        """``code``: other build artifacts than the session's (e.g. a broken Lambda zip)."""
        return deploy_into(emulator, code or artifacts, tmp_path / "dist", mutate, **options)

    return _deploy


@pytest.fixture(scope="module")
def healthy(emulator, artifacts, tmp_path_factory) -> Iterator[Deployed]:
    """One healthy deployment shared by a module's read-only checks."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", "testing")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    mp.setenv("AWS_DEFAULT_REGION", REGION)
    try:
        yield deploy_into(emulator, artifacts, tmp_path_factory.mktemp("dist"))
    finally:
        mp.undo()
