"""``fraud demo`` as the README runs it (smaller): generate, train on Spark, serve, score, drop a new
month, retrain through intake and the launcher, and the running API answers with the new model."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_the_whole_loop(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | {
        "PYTHONPATH": str(ROOT),
        "FRAUD_STORE_URI": str(tmp_path / "store"),
    }
    cmd = [sys.executable, "-m", "fraud_cli", "demo", "--rows", "30000", "--cards", "120"]
    cmd += ["--data-dir", str(tmp_path / "data"), "--timeout", "600"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, (out[-2000:], err[-3000:])
    assert "the API now answers with" in out and "demo: done" in out, out[-2000:]
    assert len(list((tmp_path / "store" / "raw").glob("*.csv"))) == 13  # 12 months, then the dropped one
    assert not re.search(r"(?<!\d)\d{16}(?!\d)", out + err)  # no card number in what a user sees
