"""The CLI behaves like a CLI: ``--json`` is one JSON document on stdout, summaries go to stderr, logs
are readable on a terminal and JSON elsewhere, and Spark's own WARN noise stays off the terminal."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fraud_cli.cli import main as cli_main
from fraud_detection.logs import JsonFormatter, TextFormatter, log_formatter

ROOT = Path(__file__).resolve().parents[2]


def _env(store: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    return {**env, "FRAUD_STORE_URI": str(store), "PYTHONPATH": str(ROOT), **extra}


def test_runs_json_is_exactly_one_document_on_stdout(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "fraud_cli", "runs", "--json"],
        env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # the whole of stdout, nothing after it
    assert set(doc) >= {"runs", "queued", "latest"}
    assert "runs: 0 shown" in r.stderr and "runs:" not in r.stdout


def test_drift_and_monitor_send_their_summaries_to_stderr(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FRAUD_STORE_URI", str(tmp_path))
    from fraud_detection.settings import get_settings

    get_settings.cache_clear()
    try:
        rc = cli_main(["monitor", "--json"])
    finally:
        get_settings.cache_clear()
    out, err = capsys.readouterr()
    json.loads(out)
    assert rc in (0, 1) and "monitor:" in err and "monitor:" not in out


def test_log_format_follows_the_terminal_unless_set(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert isinstance(log_formatter("auto"), TextFormatter)
    assert isinstance(log_formatter("json"), JsonFormatter)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert isinstance(log_formatter("auto"), JsonFormatter)
    assert isinstance(log_formatter("text"), TextFormatter)


def test_text_lines_are_readable_and_redacted():
    record = logging.makeLogRecord(
        {"name": "fraud_cli", "levelname": "INFO", "msg": "card 4000323412349873 seen", "run_id": "r1"}
    )
    line = TextFormatter().format(record)
    assert "INFO" in line and "fraud_cli: card [card number redacted] seen" in line and "run_id=r1" in line


@pytest.mark.spark
def test_spark_and_hive_warnings_stay_off_the_terminal(tmp_path):
    """A metastore lookup of a missing database warns at WARN in Hive's ObjectStore; at the default
    level nothing of Spark's reaches stderr."""
    code = (
        "from pathlib import Path; from fraud_detection.settings import Settings\n"
        "from spark_jobs.session import build_local_session\n"
        f"d = Path({str(tmp_path)!r})\n"
        "spark = build_local_session(Settings(store_uri=str(d), spark_master='local[1]'), d / 'state')\n"
        "print(spark.catalog.databaseExists('fraud_missing')); spark.stop()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr
    assert " WARN " not in r.stderr and "NoSuchObjectException" not in r.stderr, r.stderr
