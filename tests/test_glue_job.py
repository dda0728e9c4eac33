"""The Glue entry script and its packaging: same pipeline underneath, what Glue needs is built by a script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "glue"))

import build_package  # noqa: E402
import live_drift_job  # noqa: E402
import train_job  # noqa: E402


def test_plain_arguments_use_the_glue_option_names():
    args = train_job._plain_args(
        [
            "train_job.py",
            "--store_uri",
            "/tmp/s",
            "--input",
            "a.csv,b/",
            "--test_from",
            "2020-06-21",
            "--trigger",
            "schedule",
        ]
    )
    assert args == {"store_uri": "/tmp/s", "input": "a.csv,b/", "test_from": "2020-06-21", "trigger": "schedule"}


def test_package_holds_the_code_and_pins_modules_from_the_lock(tmp_path):
    built = build_package.build(tmp_path)
    names = zipfile.ZipFile(built["fraud_detection.zip"]).namelist()
    for module in ("fraud_detection/features.py", "fraud_detection/contract.py", "spark_jobs/pipeline.py"):
        assert module in names
    assert not any(n.startswith(("api/", "tests/")) for n in names)
    modules = built["additional_python_modules.txt"].read_text().strip().split(",")
    lock = json.loads((ROOT / "Pipfile.lock").read_text())
    assert f"scikit-learn{lock['default']['scikit-learn']['version']}" in modules
    assert f"great-expectations{lock['glue']['great-expectations']['version']}" in modules
    # transitive requirements too, each at the lock's version (scipy: scikit-learn's; Glue 5.0 has none)
    assert f"scipy{lock['default']['scipy']['version']}" in modules
    assert f"sqlparse{lock['glue']['sqlparse']['version']}" in modules  # mlflow-skinny's
    shipped = {m.split("==")[0] for m in modules}
    assert all("==" in m for m in modules) and len(shipped) == len(modules)
    assert shipped.isdisjoint(build_package.glue_provided())  # nothing Glue 5.0 already has
    assert shipped.isdisjoint(build_package.SERVING_ONLY)  # mlflow-skinny's serving side stays out
    assert built["train_job.py"].read_text() == (ROOT / "glue" / "train_job.py").read_text()
    assert built["live_drift_job.py"].read_text() == (ROOT / "glue" / "live_drift_job.py").read_text()
    assert "spark_jobs/drift_checks.py" in names and "spark_jobs/drift.py" in names  # the live job's code


def _provided_with(tmp_path, **versions) -> Path:
    """Glue 5.0's documented list with some versions changed."""
    text = build_package.PROVIDED_FILE.read_text()
    for name, version in versions.items():
        old = f"{name}=={build_package.glue_provided()[name]}"
        assert old in text
        text = text.replace(old, f"{name}=={version}")
    path = tmp_path / "provided.txt"
    path.write_text(text)
    return path


def test_module_list_ships_a_glue_module_only_when_a_requirement_rejects_glues_version(tmp_path):
    assert build_package.resolve().upgrades == {}  # today Glue 5.0's versions satisfy every requirement
    # a Glue packaging older than a shipped package accepts would be upgraded, with the reason
    resolved = build_package.resolve(provided_path=_provided_with(tmp_path, packaging="1.0"))
    assert "packaging" in resolved.modules and "needs packaging" in resolved.upgrades["packaging"]
    # never for Glue's own runtime: scikit-learn needs a newer numpy than 1.0 -> the build fails
    with pytest.raises(build_package.ClosureError, match="numpy"):
        build_package.resolve(provided_path=_provided_with(tmp_path, numpy="1.0"))


def test_live_drift_job_arguments_become_settings():
    args = live_drift_job._plain_args(["live_drift_job.py", "--store_uri", "/tmp/s", "--hours", "12"])
    assert args == {"store_uri": "/tmp/s", "hours": "12"}
    local = live_drift_job.settings_overrides(args, on_glue=False)
    assert local == {"store_uri": "/tmp/s", "live_drift_hours": "12"}  # the prediction log backend from settings
    glue_args = {
        "JOB_NAME": "fraud-live-drift-dev",
        "store_uri": "s3://b",
        "prediction_log_table": "fraud-dev-prediction-log",
        "model_name": "fraud-x",
        "aws_region": "eu-west-1",
    }
    on_glue = live_drift_job.settings_overrides(glue_args, on_glue=True)
    assert on_glue == {
        "store_uri": "s3://b",
        "kv_backend": "dynamodb",
        "catalog_mode": "glue",
        "prediction_log_table": "fraud-dev-prediction-log",
        "registered_model_name": "fraud-x",
        "aws_region": "eu-west-1",
    }
    from fraud_detection.settings import Settings

    assert Settings(**on_glue).registered_model_name == "fraud-x"  # the metric's ModelName dimension


@pytest.mark.spark
@pytest.mark.slow
def test_entry_script_runs_the_pipeline_without_awsglue(small_history_csv, tmp_path):
    store = tmp_path / "store"
    env = os.environ | {
        "FRAUD_SPARK_MASTER": "local[2]",
        "FRAUD_SPARK_DRIVER_MEMORY": "2g",
        "FRAUD_CATALOG_DATABASE": "fraud_glue_entry",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "glue" / "train_job.py"),
            "--store_uri",
            str(store),
            "--input",
            str(small_history_csv),
            "--run_id",
            "glue-entry-test",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((store / "runs" / "glue-entry-test.json").read_text())
    assert record["status"] == "succeeded" and record["trigger"] == "manual"
    assert json.loads((store / "models" / "latest.json").read_text())["version"] == record["version"]
