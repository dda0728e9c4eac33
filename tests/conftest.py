"""Shared fixtures: one local Spark session per test run, stores in tmp folders, generated data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config) -> None:
    # Every AWS call a component makes is checked against its role in infra/template.yaml (aws_calls.py).
    import aws_calls_plugin

    if not config.pluginmanager.has_plugin("aws_calls"):
        config.pluginmanager.register(aws_calls_plugin.Plugin(), "aws_calls")


@pytest.fixture(scope="module")
def aws_emulator() -> Iterator[str]:
    """The local AWS emulator (moto server on 127.0.0.1, ``tools.emulator.server``), one per test module:
    real HTTP from boto3, no patching, and no state shared between modules."""
    from tools.emulator.server import start

    server, url = start(0)
    yield url
    server.stop()


@pytest.fixture
def fake_aws_credentials(monkeypatch) -> None:
    """Credentials for the emulator only; never a real account from a test."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from fraud_detection.settings import Settings
    from spark_jobs.session import build_local_session

    state = tmp_path_factory.mktemp("spark_state")
    session = build_local_session(Settings(spark_master="local[2]", spark_driver_memory="2g"), state)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def small_history_csv(tmp_path_factory) -> Path:
    """~40k generated transactions, Jan..Aug 2019, 150 cards: enough for train / validation / test."""
    from tools.generator import generate_csv

    out = tmp_path_factory.mktemp("data") / "history.csv"
    generate_csv(out, rows=40_000, cards=150, start=date(2019, 1, 1), end=date(2019, 8, 31), seed=7, fraud_rate=0.01)
    return out
