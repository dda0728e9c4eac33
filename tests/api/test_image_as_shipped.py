"""The API image as it ships, run in a stand-in for its ECS task (no Docker engine here).

The image's file tree is built by ``tests/shipped_image.py`` from ``api/Dockerfile`` itself (its COPY
lines, its requirements stage, its pip install into a clean virtualenv: only the lock's [packages] +
[api]). Its CMD runs with its ENV from its WORKDIR, as the task definition's user, with the tree
read-only except the mounts the task definition makes writable (read from infra/template.yaml).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import shipped_image
import standin_env as se
from api_support import HASH_KEY, ROOT, to_request

from fraud_detection import artifacts
from fraud_detection.free_port import free_port
from fraud_detection.storage import LocalStore
from tools.emulator.cfn import load_template

GRACEFUL_TIMEOUT_S = 20  # settings.api_graceful_timeout_s's default: the image's ENV does not change it


def api_container() -> tuple[dict, dict]:
    """(the task definition's properties, its one container definition)."""
    td = load_template()["Resources"]["ApiTaskDefinition"]["Properties"]
    (container,) = td["ContainerDefinitions"]
    return td, container


@pytest.fixture(scope="module")
def image():
    with se.scratch("api-image") as work:
        img = shipped_image.build(work)
        se.make_read_only(img.root)  # ReadonlyRootFilesystem (checked below): nothing in the tree is writable
        yield img


@pytest.fixture
def task(image):
    """The task's writable mounts (host directories owned by the task's user) and its user id."""
    td, container = api_container()
    assert container.get("ReadonlyRootFilesystem") is True, "the task definition should set ReadonlyRootFilesystem"
    uid = int(container["User"])
    volumes = {v["Name"] for v in td.get("Volumes", [])}
    with se.scratch("api-task") as mnt:
        mounts = {}
        for m in container.get("MountPoints", []):
            assert m["SourceVolume"] in volumes
            if not m.get("ReadOnly", False):
                mounts[m["ContainerPath"]] = se.writable_dir(mnt / m["ContainerPath"].strip("/"), uid)
        yield uid, mounts


def task_env(image, mounts: dict[str, Path], api_key_entry: str, **overrides: str) -> dict[str, str]:
    """The container's environment (the image's ENV, mapped), the task definition's secrets, the overrides."""
    return {
        **image.environment(mounts),
        "FRAUD_API_KEYS": api_key_entry,  # Secrets in the task definition
        "FRAUD_CARD_HASH_KEY": HASH_KEY,
        "FRAUD_MODEL_SIGNING_KEY": "placeholder-signing-key",  # a test that publishes gives the real one
        **overrides,
    }


def run_as(uid: int, argv: list[str], env: dict[str, str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*se.as_unprivileged(uid), *argv], env=env, cwd=cwd, **kw)


def publish(model_template: Path, store: Path) -> str:
    """Publish the session's small model into the store with the project's artifact code.

    The local store writes its files 0600 (mkstemp), and here the publisher (this process) is not the task's
    user: the pointer is written by ``publish_latest`` into a staging store, made readable, then moved into
    place in one rename, as an S3 PUT makes an object visible at once.
    """
    source = LocalStore(model_template)
    version = artifacts.read_latest(source).version
    shutil.copytree(model_template / "models" / version, store / "models" / version)
    staging = store.parent / "staging"
    artifacts.publish_latest(LocalStore(staging), artifacts.read_manifest(source, version))
    for path in [*(store / "models").rglob("*"), staging / artifacts.LATEST_KEY]:
        path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    (staging / artifacts.LATEST_KEY).replace(store / artifacts.LATEST_KEY)
    return version


def test_the_tree_is_what_the_dockerfile_copies(image):
    assert image.copied == ["/app", "/app/fraud_detection", "/app/api"]
    assert sorted(p.name for p in image.app.iterdir()) == ["api", "fraud_detection", "requirements.txt", "var"]
    assert image.uid == int(api_container()[1]["User"]), "the Dockerfile's user and the task definition's differ"
    assert image.user != "root" and image.cmd == ["python", "-m", "api"]


def test_the_image_python_sees_the_tree_and_its_packages_only(image, task, api_key):
    uid, mounts = task
    code = (
        "import sys, json, api.server, fraud_detection.settings, numpy, sklearn, fastapi, uvicorn\n"
        "import importlib.util as u\n"
        "print(json.dumps({'path': sys.path, 'api': api.__file__, 'fd': fraud_detection.__file__,\n"
        "  'absent': [m for m in ('pyspark', 'pandas', 'mlflow', 'great_expectations', 'pytest', 'moto',\n"
        "    'fraud_cli', 'tools', 'infra', 'spark_jobs', 'retrain_lambda', 'glue', 'bench') if u.find_spec(m)]}))"
    )
    env = task_env(image, mounts, api_key[1])
    out = run_as(uid, [str(image.python), "-c", code], env, image.app, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["api"].startswith(str(image.app)) and seen["fd"].startswith(str(image.app))
    assert seen["absent"] == []
    repo = [p for p in seen["path"] if p == str(ROOT) or (p.startswith(f"{ROOT}/") and not p.startswith(str(se.CACHE)))]
    assert not repo, seen["path"]
    assert "" in seen["path"] or str(image.app) in seen["path"]  # the WORKDIR, as `python -m` / -c put it


def test_the_image_serves_as_shipped(image, task, api_key, model_template, rows, tmp_path):
    uid, mounts = task
    port = free_port()
    store = se.writable_dir(mounts["/tmp"] / "store", uid)  # the embedded store stands in for S3
    signing_key = (model_template / artifacts.SIGNING_KEY_FILE).read_text().strip()  # the model was signed with
    env = task_env(image, mounts, api_key[1], FRAUD_API_HOST="127.0.0.1", FRAUD_API_PORT=str(port),
                   FRAUD_STORE_URI=str(store), FRAUD_MODEL_SIGNING_KEY=signing_key)  # fmt: skip
    python = shutil.which(image.cmd[0], path=env["PATH"])
    assert python == str(image.python)
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*se.as_unprivileged(uid), python, *image.cmd[1:]], cwd=image.app, env=env,
                                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            health = _poll(base, "/health", proc, want=200, timeout=60)
            assert health.status_code == 200
            assert httpx.get(f"{base}/ready", timeout=5).status_code == 503  # no model in the store yet

            version = publish(model_template, store)
            ready = _poll(base, "/ready", proc, want=200, timeout=30)  # polled latest.json: no restart
            assert ready.json()["model_version"] == version and proc.poll() is None

            r = httpx.post(f"{base}/v1/score", json=to_request(rows[0]), headers={"X-API-Key": api_key[0]}, timeout=10)
            assert r.status_code == 200, r.text
            assert 0 <= r.json()["fraud_probability"] <= 1

            hc = run_as(uid, [python, *image.healthcheck[1:]], env, image.app, timeout=15)
            assert hc.returncode == 0

            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=GRACEFUL_TIMEOUT_S + 10)
            assert rc == 0 and time.monotonic() - started < GRACEFUL_TIMEOUT_S
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            print("\n".join(x for x in log_path.read_text().splitlines() if "api.access" not in x)[-6000:])
    text = log_path.read_text()
    assert text.count('"msg": "scoring API started"') == int(image.env["FRAUD_API_WORKERS"]), text[-3000:]
    assert not [p for p in image.root.rglob("*") if p.stat().st_uid == uid]  # the task's user wrote nothing there


def _poll(base: str, path: str, proc: subprocess.Popen, *, want: int, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}")
        try:
            last = httpx.get(f"{base}{path}", timeout=2)
            if last.status_code == want:
                return last
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{path} did not answer {want} within {timeout}s (last: {last})")
