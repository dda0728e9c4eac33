"""``fraud train`` as a user runs it: a non-default model, compared with others on the same split, in a
subprocess on local Spark. The published model is the one asked for; the report compares all of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tools.generator import generate_csv

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_train_publishes_the_chosen_model_and_compares_the_others(tmp_path):
    data = tmp_path / "all.csv"
    generate_csv(data, rows=8_000, cards=60, start=date(2019, 1, 1), end=date(2019, 8, 31), seed=5, fraud_rate=0.03)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | {
        "PYTHONPATH": str(ROOT),
        "FRAUD_STORE_URI": str(tmp_path / "store"),
        "FRAUD_SPARK_MASTER": "local[2]",
        "FRAUD_CATALOG_DATABASE": "fraud_cli_train",
    }
    cmd = [sys.executable, "-m", "fraud_cli", "train", "--input", str(data), "--model", "rf", "--compare", "cluster"]
    proc = subprocess.run([*cmd, "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)  # the whole of stdout is one document
    assert out["status"] == "succeeded" and "published as latest" in proc.stderr.splitlines()[-1]

    model_dir = tmp_path / "store" / "models" / out["version"]
    assert json.loads((model_dir / "manifest.json").read_text())["model_type"] == "rf"
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert set(metrics["comparison"]) == {"rf", "cluster", "hgb"}  # the default is always compared
    assert metrics["comparison"]["rf"]["pr_auc"] == pytest.approx(out["metrics"]["pr_auc"], abs=1e-4)
    assert all(0 < m["roc_auc"] <= 1 for m in metrics["comparison"].values())
    pointer = json.loads((tmp_path / "store" / "models" / "latest.json").read_text())
    assert pointer["version"] == out["version"]
