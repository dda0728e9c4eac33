"""``fraud deploy`` into the local emulator: the same packaging, upload and bootstrap -> full sequence,
with the stack's resources created through the service APIs (``tools.emulator.provisioner``).

    python -m tools.emulator.deploy --endpoint-url http://127.0.0.1:5000 --env dev --no-lambda-deps \\
        --vpc-id ... --private-subnets ... --public-subnets ... --certificate-arn ... --api-domain-name ...

moto's own CloudFormation reports success while skipping Glue, autoscaling, bucket notifications and
Fargate settings, so this is the way to get a stack the deployment checks can inspect locally.
"""

from __future__ import annotations

import argparse
import sys

import boto3

from infra import deploy
from tools.emulator.provisioner import EmulatorProvisioner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    if not args.endpoint_url:
        parser.error("--endpoint-url (the emulator's address) is required")
    session = boto3.Session(region_name=args.region)
    return deploy.run(args, EmulatorProvisioner(session, args.endpoint_url, args.region))


if __name__ == "__main__":
    sys.exit(main())
