"""api/Dockerfile: its properties (no Docker engine here). The image run as shipped: test_image_as_shipped.py."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

from api_support import ROOT

DOCKERFILE = ROOT / "api" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in _instructions():
        if word == "ENV":
            for token in shlex.split(rest):
                k, _, v = token.partition("=")
                env[k] = v
    return env


def test_base_image_is_slim_python_311_pinned():
    bases = [rest.split()[0] for word, rest in _instructions() if word == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", b) for b in bases), bases


def test_dependencies_come_from_the_lock_api_category_only():
    text = DOCKERFILE.read_text()
    assert "lock_to_requirements.py Pipfile.lock default api" in text
    assert "--require-hashes" in text and "pipenv" not in text.replace("pipenv run", "")
    sys.path.insert(0, str(ROOT / "api"))
    from lock_to_requirements import requirements

    lock = json.loads((ROOT / "Pipfile.lock").read_text())
    reqs = requirements(lock, ["default", "api"])
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"fastapi", "uvicorn", "scikit-learn", "numpy", "prometheus-client", "uvloop", "httptools"} <= names
    assert not names & {"pyspark", "pandas", "great-expectations", "mlflow", "pytest", "moto"}
    assert all("--hash=sha256:" in r for r in reqs)


def test_runs_as_non_root_with_healthcheck_and_port_and_workers_from_env():
    ins = _instructions()
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(word == "HEALTHCHECK" and "/health" in rest for word, rest in ins)
    env = _env()
    assert env["FRAUD_API_HOST"] == "0.0.0.0" and "FRAUD_API_PORT" in env and "FRAUD_API_WORKERS" in env
    assert env["OMP_NUM_THREADS"] == "1"
    assert [word for word, _ in ins].count("CMD") == 1
    copies = [rest for word, rest in ins if word == "COPY"]
    assert not any("spark_jobs" in c or "glue" in c or "tests" in c for c in copies)


def test_importing_the_service_does_not_import_pyspark():
    code = (
        "import sys, api.main, api.server; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pyspark', 'great_expectations', 'mlflow')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_service_needs_neither_pyspark_nor_pandas(store, rows):
    """The image has no pandas (scikit-learn only uses it when present): block both and build, load, score."""
    code = (
        "import sys; sys.modules['pandas'] = None; sys.modules['pyspark'] = None\n"
        "import api.main, api.server\n"
        "from fraud_detection.storage import LocalStore\n"
        "from api.model_holder import load_candidate\n"
        "from fraud_detection import artifacts\n"
        f"s = LocalStore({str(store.root)!r}); lm = load_candidate(s, artifacts.read_latest(s).version)\n"
        "import numpy as np; print(lm.scorer.kind, lm.scorer.predict_proba1(np.zeros((1, lm.scorer.n_features)))[0])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("hgb-compiled"), r.stdout + r.stderr
