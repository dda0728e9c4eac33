"""A first deploy with no model yet comes up: every health check the deployment runs answers 200.

The README's order deploys the API image before any training. Three health checks decide whether a task
lives: the ALB target group's (the deployment circuit breaker rolls back on it), the ECS task
definition's container check and the image's HEALTHCHECK. Each path is read from where it is defined
(the template, the Dockerfile) and asked of the real app (``api.main:create_app``) on an empty store,
where ``/ready`` must still say 503: readiness is reported, not a reason to kill the task.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.emulator.cfn import load_template

ROOT = Path(__file__).resolve().parents[2]
PATH_IN_URL = re.compile(r"http://127\.0\.0\.1:[^/]*/([A-Za-z0-9_./-]*)")


def _resources() -> dict:
    return load_template()["Resources"]


def target_group_path() -> str:
    return _resources()["ApiTargetGroup"]["Properties"]["HealthCheckPath"]


def task_definition_path() -> str:
    container = _resources()["ApiTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    command = " ".join(container["HealthCheck"]["Command"])
    found = PATH_IN_URL.findall(command)
    assert len(found) == 1, f"one probed URL expected in the task definition's health check: {command!r}"
    return "/" + found[0]


def dockerfile_path() -> str:
    text = (ROOT / "api" / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.strip().startswith("HEALTHCHECK")]
    assert len(lines) == 1, "api/Dockerfile has no (or several) HEALTHCHECK"
    # the URL is built as 'http://127.0.0.1:' + port + '/health' in the probe: take the quoted path
    paths = re.findall(r"'(/[A-Za-z0-9_./-]+)'", lines[0])
    assert len(paths) == 1, f"cannot find the probed path in {lines[0]!r}"
    return paths[0]


@pytest.fixture(scope="module")
def empty_store_app(tmp_path_factory):
    """The real app on a store with no model published (the state of a first deploy)."""
    from fastapi.testclient import TestClient

    from api.auth import new_api_key
    from api.main import create_app
    from fraud_detection.settings import Settings
    from fraud_detection.storage import LocalStore

    store = LocalStore(tmp_path_factory.mktemp("empty-store"))
    _, entry = new_api_key("health")
    settings = Settings(store_uri=str(store.root), api_keys=entry, card_hash_key="k" * 32, api_reload_interval_s=60)
    with TestClient(create_app(settings, store)) as client:
        yield client


@pytest.mark.parametrize("where", [target_group_path, task_definition_path, dockerfile_path])
def test_health_check_answers_200_before_any_model(empty_store_app, where):
    path = where()
    response = empty_store_app.get(path)
    assert response.status_code == 200, f"{where.__name__}: GET {path} -> {response.status_code} {response.text}"


def test_readiness_is_reported_not_checked(empty_store_app):
    """No model yet: /ready says so (503 with a reason), and none of the three checks probes it."""
    response = empty_store_app.get("/ready")
    assert response.status_code == 503 and response.json()["status"] == "not ready", response.text
    assert "/ready" not in {target_group_path(), task_definition_path(), dockerfile_path()}


def test_circuit_breaker_gives_the_check_time():
    """The service waits longer than the container's start period before the ALB's verdict counts."""
    res = _resources()
    service = res["ApiService"]["Properties"]
    container = res["ApiTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert service["HealthCheckGracePeriodSeconds"] >= container["HealthCheck"]["StartPeriod"]
