"""``fraud deploy``: package, upload and create/update the AWS stack (``infra/deploy.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "deploy"
HELP = "Package the Glue job, Lambda and API image, upload to S3 and create/update the CloudFormation stack."

_ROOT = Path(__file__).resolve().parents[2]


def _infra_deploy():
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    from infra import deploy

    return deploy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _infra_deploy().add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _infra_deploy().run(args)
