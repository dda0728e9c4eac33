"""Fixtures of the scoring API suites: generated rows, a store with a published model, an app, a live server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import make_settings, running_server, server_env
from factories import generated_rows, make_artifact, sorted_rows

from api.auth import new_api_key
from fraud_detection.free_port import free_port
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore


@pytest.fixture(scope="session")
def rows() -> list[dict[str, str]]:
    return sorted_rows(generated_rows(rows=4000, cards=150, seed=7))


@pytest.fixture(scope="session")
def api_key() -> tuple[str, str]:
    return new_api_key("tests")


@pytest.fixture(scope="session")
def model_template(tmp_path_factory, rows) -> Path:
    """A store with one published model version, built once per session; tests copy it."""
    root = tmp_path_factory.mktemp("model_template")
    store = LocalStore(root)
    make_artifact(store, rows, seed=0, max_iter=60, publish=True)
    return root


@pytest.fixture
def store(tmp_path, model_template) -> LocalStore:
    import shutil

    shutil.copytree(model_template, tmp_path / "store")
    return LocalStore(tmp_path / "store")


@pytest.fixture
def empty_store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "empty")


@pytest.fixture
def settings(store, api_key) -> Settings:
    return make_settings(store, api_key[1])


@pytest.fixture
def client(settings, store):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(settings, store)) as c:
        yield c


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    return {"X-API-Key": api_key[0]}


@pytest.fixture
def live_server(settings, tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m fraud_cli serve`` (uvicorn on 127.0.0.1, a free port) in a subprocess."""
    port = free_port()
    with running_server(["fraud_cli", "serve"], server_env(settings, port), tmp_path / "server.log") as proc:
        yield f"http://127.0.0.1:{port}", proc
