"""What each deployable ships, listed exactly, and that its code imports from what it ships alone.

- the Lambda zip (``infra.deploy.build_lambda_zip``): retrain_lambda, the fraud_detection modules it
  imports, and the pinned pure-runtime wheels; every shipped module imports in the python3.11 runtime
  stand-in (boto3 / botocore only: no numpy);
- the Glue ``--extra-py-files`` zip (``glue/build_package.py``): fraud_detection and spark_jobs; the job's
  pipeline imports with only the zip and site-packages on the path;
- the API image tree (``api/Dockerfile``): fraud_detection and api; every shipped module imports in the
  image's virtualenv.

No deployable carries the CLI (fraud_cli), the tools, infra, tests or bench. A new import that pulls in
another module changes these lists: update them on purpose.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import shipped_image
import shipped_lambda
import standin_env as se

ROOT = se.ROOT
NEVER_SHIPPED = {"fraud_cli", "tools", "infra", "tests", "bench", "glue", "scripts", "docs"}

LAMBDA_TOP_LEVEL = {
    "retrain_lambda", "fraud_detection",
    "pydantic", "pydantic_core", "pydantic_settings", "annotated_types", "typing_extensions", "typing_inspection",
    "dotenv",
}  # fmt: skip
LAMBDA_FRAUD_DETECTION = {
    "__init__", "contract", "file_names", "idempotency", "launcher", "layout", "logs", "runs", "settings",
    "sqlite_retry", "storage",
}  # fmt: skip
GLUE_TOP_LEVEL = {"fraud_detection", "spark_jobs"}
IMAGE_TOP_LEVEL = {"api", "fraud_detection"}


def top_level(names: list[str]) -> set[str]:
    """Importable top-level names in an archive / tree listing (dist-info metadata left out)."""
    out = set()
    for name in names:
        first = PurePosixPath(name).parts[0]
        if first.endswith(".dist-info"):
            continue
        out.add(first[: -len(".py")] if first.endswith(".py") else first)
    return out


def modules_of(names: list[str], package: str) -> set[str]:
    return {PurePosixPath(n).stem for n in names if n.startswith(f"{package}/") and n.endswith(".py")}


def assert_nothing_unshipped(names: list[str]) -> None:
    bad = [n for n in names if NEVER_SHIPPED & set(PurePosixPath(n).parts[:1])]
    assert not bad, bad


# --------------------------------------------------------------------------------------------- Lambda
@pytest.fixture(scope="module")
def lambda_zip():
    with se.scratch("contents-lambda") as work:
        yield shipped_lambda.build_zip(work / "dist"), work


def test_lambda_zip_holds_the_handler_its_library_modules_and_its_wheels(lambda_zip):
    path, _ = lambda_zip
    names = zipfile.ZipFile(path).namelist()
    assert_nothing_unshipped(names)
    assert top_level(names) == LAMBDA_TOP_LEVEL
    assert modules_of(names, "fraud_detection") == LAMBDA_FRAUD_DETECTION
    assert modules_of(names, "retrain_lambda") == {"__init__", "events", "handler", "intake"}
    assert not [n for n in names if n.startswith(("boto3/", "botocore/", "numpy/"))]  # the runtime's, or none
    assert [n for n in names if n.startswith("pydantic_core/") and n.endswith("x86_64-linux-gnu.so")]


def test_every_module_in_the_lambda_zip_imports_in_the_runtime_stand_in(lambda_zip):
    path, work = lambda_zip
    task = shipped_lambda.unpack(path, work / "task")
    names = zipfile.ZipFile(path).namelist()
    ours = sorted(
        str(PurePosixPath(n).with_suffix("")).replace("/", ".").removesuffix(".__init__")
        for n in names
        if n.endswith(".py") and n.split("/")[0] in ("retrain_lambda", "fraud_detection")
    )
    python, env = shipped_lambda.runtime_python()
    code = (
        "import importlib, sys; sys.path.insert(0, sys.argv[1])\n"
        "for m in sys.argv[2:]: importlib.import_module(m)\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if '.' not in m)))"
    )
    out = subprocess.run([*se.as_unprivileged(), str(python), "-I", "-c", code, str(task), *ours],
                         env={"PATH": "/usr/bin:/bin", **env}, cwd=task, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout))
    assert "retrain_lambda" in loaded and not {"numpy", "sklearn", "pandas", "pyspark"} & loaded


# ----------------------------------------------------------------------------------------------- Glue
def _glue_build(out: Path) -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location("glue_build_package", ROOT / "glue" / "build_package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.build(out)


def test_glue_zip_holds_the_library_and_the_spark_jobs_only(tmp_path):
    archive = _glue_build(tmp_path)["fraud_detection.zip"]
    names = zipfile.ZipFile(archive).namelist()
    assert_nothing_unshipped(names)
    assert top_level(names) == GLUE_TOP_LEVEL


def test_glue_pipeline_imports_from_the_zip_and_site_packages_alone(tmp_path):
    archive = _glue_build(tmp_path / "dist")["fraud_detection.zip"]
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1])\n"
        "import spark_jobs.pipeline, fraud_detection\n"
        "print(json.dumps({'path': sys.path, 'files': [spark_jobs.pipeline.__file__, fraud_detection.__file__]}))"
    )
    # -I: no PYTHONPATH, no cwd on the path; site-packages of this interpreter stand in for Glue's modules
    out = subprocess.run([sys.executable, "-I", "-c", code, str(archive)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert all(f.startswith(str(archive) + "/") for f in seen["files"]), seen["files"]
    assert not [p for p in seen["path"] if p == str(ROOT) or p.startswith(f"{ROOT}/") and ".venv" not in p]


# ---------------------------------------------------------------------------------------------- image
@pytest.fixture(scope="module")
def image():
    with se.scratch("contents-image") as work:
        yield shipped_image.build(work)


def test_image_tree_holds_the_api_and_the_library_only(image):
    names = [p.relative_to(image.app).as_posix() for p in image.app.rglob("*")]
    assert_nothing_unshipped(names)
    packages = {n for n in top_level(names) if (image.app / n / "__init__.py").exists()}
    assert packages == IMAGE_TOP_LEVEL
    assert top_level(names) - packages == {"requirements.txt", "var"}
    assert not list((image.app / "var").iterdir())


def test_every_module_in_the_image_imports_in_its_virtualenv(image):
    ours = sorted(
        ".".join(p.relative_to(image.app).with_suffix("").parts).removesuffix(".__init__")
        for pkg in IMAGE_TOP_LEVEL
        for p in (image.app / pkg).rglob("*.py")
        if p.name != "__main__.py"  # python -m api: starts the server (run in test_image_as_shipped.py)
    )
    code = (
        "import importlib, sys, json\n"
        "for m in sys.argv[1:]: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if '.' not in m)))"
    )
    with se.scratch("contents-image-tmp") as tmp:
        env = image.environment({"/tmp": se.writable_dir(tmp / "tmp")})  # the image's ENV: NUMBA_CACHE_DIR in /tmp
        out = subprocess.run([*se.as_unprivileged(), str(image.python), "-c", code, *ours], env=env,
                             cwd=image.app, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout))
    assert not {"pyspark", "pandas", "mlflow", "great_expectations"} & loaded
