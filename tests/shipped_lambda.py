"""The retraining Lambda as it ships: the zip ``infra.deploy`` builds, unpacked, run by a stand-in for the
AWS Lambda python3.11 runtime.

The stand-in (``standins/lambda_python311.json`` keeps the versions and their sources):
- a clean virtualenv of the same CPython 3.11 holding only what the runtime provides: boto3 / botocore at
  the runtime's documented versions and their dependencies; no numpy, no pydantic, nothing of the repo;
- the zip unpacked into a read-only task root that comes first on ``sys.path`` (Lambda's /var/task);
- the handler named by the template's ``Handler`` (``module.function``), imported and called the way the
  runtime calls it, in a subprocess started with ``python -I`` (no PYTHONPATH, no cwd on the path) from a
  clean environment, as an unprivileged user when the tests run as root.

Used by tests/retrain/test_shipped_lambda.py, tests/test_deployable_contents.py and
``tests/verify_end_to_end.py --invoke-handler-locally``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import standin_env as se

ROOT = se.ROOT
RUNTIME_SPEC = Path(__file__).resolve().parent / "standins" / "lambda_python311.json"

# Runs inside the stand-in: what the Lambda runtime's bootstrap does for each invocation, minus the HTTP
# runtime API: put the task root first on sys.path, import the handler named by _HANDLER, call it.
_DRIVER = r"""
import importlib, json, os, sys, uuid
sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
events_file, results_file = sys.argv[1], sys.argv[2]
module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), function_name)

class Context:
    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())

out = []
with open(events_file) as fh:
    events = json.load(fh)
for event in events:
    try:
        out.append({"result": handler(event, Context())})
    except Exception as exc:  # what Lambda reports as the invocation's error
        out.append({"errorType": type(exc).__name__, "errorMessage": str(exc)})
modules = {name: getattr(mod, "__file__", None) for name, mod in sys.modules.items() if "." not in name}
with open(results_file, "w") as fh:
    json.dump({"invocations": out, "sys_path": sys.path, "modules": modules}, fh, default=str)
"""


@dataclass
class Invocations:
    results: list[dict]  # per event: {"result": ...} or {"errorType": ..., "errorMessage": ...}
    sys_path: list[str]
    modules: dict[str, str | None]  # top-level module -> file, as imported in the stand-in
    log: str


def runtime_spec() -> dict:
    return json.loads(RUNTIME_SPEC.read_text())


def runtime_requirements() -> list[str]:
    spec = runtime_spec()
    return [f"{name}=={version}" for name, version in {**spec["sdk"], **spec["sdk_dependencies"]}.items()]


def runtime_python() -> tuple[Path, dict[str, str]]:
    """The stand-in runtime's interpreter (venv built once per pinned set) and the environment it needs."""
    reqs = runtime_requirements()

    def install(python: Path, env: dict[str, str]) -> None:
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
        subprocess.run([*pip, "install", "--no-deps", *reqs], check=True, env=env)
        subprocess.run([*pip, "check"], check=True, env=env)
        # pip / setuptools are the venv's, not the runtime's: the function must not find them
        subprocess.run([*pip, "uninstall", "--yes", "pip", "setuptools"], check=True, env=env)

    return se.venv("lambda-python311", se.key_of(*reqs, sys.version), install)


def handler_name() -> str:
    """The ``Handler`` of the function in the template (``module.function``), as the runtime reads it."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tools.emulator.cfn import load_template

    fns = [r for r in load_template()["Resources"].values() if r.get("Type") == "AWS::Lambda::Function"]
    (fn,) = [r for r in fns if r["Properties"].get("Runtime") == runtime_spec()["runtime"]]
    return fn["Properties"]["Handler"]


def build_zip(out_dir: Path) -> Path:
    """The zip exactly as ``deploy`` builds it (with the dependency wheels for manylinux2014_x86_64 / cp311)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from infra.deploy import build_lambda_zip

    return build_lambda_zip(out_dir, with_dependencies=True)


def unpack(zip_path: Path, task_root: Path) -> Path:
    """Unpacked as Lambda does into its task root, then made read-only (/var/task is)."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(task_root)
    se.make_read_only(task_root)
    return task_root


def build_and_unpack(work: Path) -> Path:
    return unpack(build_zip(work / "dist"), work / "task")


def invoke(task_root: Path, events: list[dict], env: dict[str, str], *, timeout: float = 120) -> Invocations:
    """Call the shipped handler once per event, in one warm stand-in container (one process).

    ``env``: the function's environment variables (the template's, or a test's) plus AWS credentials and
    region, which Lambda injects from the execution role. Nothing else of this process's environment
    reaches the function.
    """
    python, py_env = runtime_python()
    spec = runtime_spec()
    with se.scratch("lambda-tmp") as tmp:
        tmp_dir = se.writable_dir(tmp)  # the function's /tmp
        events_file, results_file = tmp_dir / "events.json", tmp_dir / "results.json"
        events_file.write_text(json.dumps(events))
        os.chmod(events_file, 0o644)
        run_env = {
            **spec["environment"],
            "PATH": "/usr/bin:/bin",
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": handler_name(),
            "TMPDIR": str(tmp_dir),
            "HOME": str(tmp_dir),
            **py_env,
            **env,
        }
        proc = subprocess.run(
            [*se.as_unprivileged(), str(python), "-I", "-c", _DRIVER, str(events_file), str(results_file)],
            cwd=task_root,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0 or not results_file.exists():
            raise RuntimeError(f"the stand-in runtime failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        out = json.loads(results_file.read_text())
    return Invocations(out["invocations"], out["sys_path"], out["modules"], proc.stdout + proc.stderr)


def aws_env(region: str, endpoint_url: str | None = None, session=None) -> dict[str, str]:
    """What Lambda injects (region, the execution role's credentials) plus, on the emulator, the endpoint
    override the function's settings read. The credentials are the caller's: ``session``'s, else this
    process's environment (fake ones against the emulator)."""
    env = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region, "FRAUD_AWS_REGION": region}
    creds = session.get_credentials() if session is not None else None
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        env.update({"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key})
        if frozen.token:
            env["AWS_SESSION_TOKEN"] = frozen.token
    else:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if os.environ.get(key):
                env[key] = os.environ[key]
    if endpoint_url:
        env["FRAUD_AWS_ENDPOINT_URL"] = endpoint_url
    return env
