"""``fraud deploy``: package, upload and create/update the AWS stack (``infra/deploy.py``)."""

from __future__ import annotations

import argparse

from infra import deploy

NAME = "deploy"
HELP = "Package the Glue job, Lambda and API image, upload to S3 and create/update the CloudFormation stack."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    deploy.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return deploy.run(args)
