"""A stand-in for the AWS Glue 5.0 job runtime, built from AWS's documentation, cached between runs.

``glue5_base``: a clean virtualenv on Python 3.11 holding exactly the modules AWS documents as
provided by Glue 5.0 (``glue/glue5_provided.txt``: the 44 of the docs page at their versions, plus
Spark 3.5.4's pyspark and py4j) and the real AWS Glue Python library (``awsgluedataplanepython``
5.0.0), installed with ``--no-deps`` so nothing beyond the documented set gets in.
``glue5_job``: a copy of it into which pip has installed the ``--additional-python-modules`` list
that ``infra/deploy.py``'s packaging built, with the installer options the template passes, as Glue
does at every job start.

Both live under ``.cache/glue5-standin/`` (gitignored), keyed by what they were built from, so a
second run reuses them. Cold: ~50 s for the base, ~20 s for the job environment (measured here).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "glue5-standin"
PROVIDED = ROOT / "glue" / "glue5_provided.txt"
# The Glue Python library's PyPI twin for Glue 5.0, per the docs' venv guide (see glue5_provided.txt).
AWSGLUE = "awsgluedataplanepython==5.0.0"
SHIM = Path(__file__).resolve().parent / "standin"


@dataclass(frozen=True)
class GlueEnv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def pip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.python), "-m", "pip", *args], env=clean_env(), capture_output=True, text=True, check=check,
            timeout=600,
        )  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without anything that would leak its virtualenv into the stand-in."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON",
            "PYSPARK_SUBMIT_ARGS", "SPARK_HOME", "PIPENV_ACTIVE"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("FRAUD_")}
    return env | extra


def provided_pins() -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in PROVIDED.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _build_once(target: Path, build) -> Path:
    """``build(tmp)`` into a temporary folder, then rename: a half-built environment is never reused."""
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    build(tmp)
    (tmp / ".complete").write_text("")
    tmp.rename(target)
    kind = target.name.split("-", 1)[0] + "-"  # base- / job-: one of each is kept (each is ~1.2 GB)
    for stale in target.parent.glob(kind + "*"):
        if stale != target:
            shutil.rmtree(stale, ignore_errors=True)
    return target


def _base_python() -> str:
    if sys.version_info[:2] != (3, 11):
        pytest.fail(f"the Glue 5.0 stand-in needs Python 3.11 (Glue 5.0's); this is {sys.version.split()[0]}")
    return getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="session")
def glue5_base() -> GlueEnv:
    pins = provided_pins()

    def build(tmp: Path) -> None:
        subprocess.run([_base_python(), "-m", "venv", str(tmp)], check=True, timeout=120)
        env = GlueEnv(tmp)
        env.pip("install", "--quiet", "--no-deps", *pins, AWSGLUE)

    root = _build_once(CACHE / f"base-{_key(*pins, AWSGLUE, sys.version)}", build)
    return GlueEnv(root)


@dataclass(frozen=True)
class GluePackage:
    """What ``infra/deploy.py`` packages for Glue, and how the template installs it."""

    files: dict[str, Path]
    modules: list[str]  # --additional-python-modules, split at commas
    installer_options: list[str]  # --python-modules-installer-option, split like a command line


@pytest.fixture(scope="session")
def glue_package(tmp_path_factory) -> GluePackage:
    from infra.deploy import build_glue
    from tools.emulator.cfn import load_template

    files = build_glue(tmp_path_factory.mktemp("dist") / "glue")
    modules = [m for m in files["additional_python_modules.txt"].read_text().strip().split(",") if m]
    args = load_template()["Resources"]["TrainJob"]["Properties"]["DefaultArguments"]
    return GluePackage(files, modules, shlex.split(args.get("--python-modules-installer-option", "")))


@pytest.fixture(scope="session")
def glue5_job(glue5_base: GlueEnv, glue_package: GluePackage) -> GlueEnv:
    """The base plus the module list, installed the way Glue installs ``--additional-python-modules``."""

    def build(tmp: Path) -> None:
        # hard links: pip only adds files or unlinks them on an upgrade, so the base is never written to
        shutil.copytree(glue5_base.root, tmp, symlinks=True, copy_function=_link_or_copy)
        GlueEnv(tmp).pip("install", *glue_package.installer_options, *glue_package.modules)

    key = _key(glue5_base.root.name, *glue_package.installer_options, *glue_package.modules)
    return GlueEnv(_build_once(CACHE / f"job-{key}", build))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def standin_pythonpath(zip_path: Path) -> str:
    """Glue puts the ``--extra-py-files`` archive on the path; the shim stands in for the JVM side only."""
    return os.pathsep.join([str(SHIM), str(zip_path)])
