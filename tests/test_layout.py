"""The layering of the repository: the shared library imports no deployable, no tool and not the CLI.

Every import statement of every module is read (``ast``), including the ones inside functions, which
run only on some paths: a deployable that ships ``fraud_detection/`` must be able to run all of it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("fraud_detection", "spark_jobs", "glue", "api", "retrain_lambda", "infra", "fraud_cli", "tools", "bench")
# package -> the project packages it may import (besides itself)
MAY_IMPORT = {
    "fraud_detection": set(),
    "spark_jobs": {"fraud_detection"},
    "api": {"fraud_detection"},
    "retrain_lambda": {"fraud_detection"},
    "glue": {"fraud_detection", "spark_jobs"},
    "tools": {"fraud_detection", "infra"},  # the emulator provisioner implements infra.deploy's Provisioner
}


def imported_project_packages(package: str) -> dict[str, set[str]]:
    """{module path: project top-level packages it imports}, for every module of ``package``."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[path.relative_to(ROOT).as_posix()] = {n for n in names if n in TOP_LEVEL and n != package}
    return found


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_package_imports_only_what_is_below_it(package):
    wrong = {
        module: sorted(imports - MAY_IMPORT[package])
        for module, imports in imported_project_packages(package).items()
        if imports - MAY_IMPORT[package]
    }
    assert not wrong, f"{package} may import only {sorted(MAY_IMPORT[package]) or 'nothing of the project'}: {wrong}"


def test_the_walk_sees_imports_inside_functions(tmp_path, monkeypatch):
    """The check above can fail: a function-level import of a deployable is found."""
    pkg = tmp_path / "fraud_detection"
    pkg.mkdir()
    (pkg / "late.py").write_text("def f():\n    from api.auth import new_api_key\n    import infra.deploy\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert imported_project_packages("fraud_detection") == {"fraud_detection/late.py": {"api", "infra"}}


def test_the_shared_library_imports_without_any_deployables_packages():
    """Every module of ``fraud_detection`` imports with numba (the API's), pyspark, great-expectations,
    mlflow (the job's) and fastapi / uvicorn (the API's) absent: the Lambda has none of them."""
    import subprocess
    import sys

    modules = sorted(
        "fraud_detection." + p.stem for p in (ROOT / "fraud_detection").glob("*.py") if p.stem != "__init__"
    )
    blocked = ("numba", "pyspark", "great_expectations", "mlflow", "fastapi", "uvicorn")
    code = (
        "import importlib, sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        f"for module in {modules!r}: importlib.import_module(module)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
