"""Embedded mode without Spark: the watcher, the local launcher (serialised runs, one follow-up), the
``runs`` / ``retrain`` / ``watch`` commands. Training is ``fake_train.py`` (same arguments and records)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import BAD_FILES, good_csv

from fraud_cli.cli import main as cli_main
from fraud_cli.commands.watch import process_landing_once, scan
from fraud_detection.launcher import list_requests, wait_for_run
from retrain_lambda.intake import Deps


def fake_runs() -> list[tuple[float, float, str, int, str]]:
    path = Path(os.environ["FAKE_TRAIN_LOG"])
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        a, b, run_id, n, trigger = line.split()
        out.append((float(a), float(b), run_id, int(n), trigger))
    return out


def wait_idle(deps, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deps.launcher.is_idle():
            return
        time.sleep(0.2)
    raise AssertionError(f"launcher not idle after {timeout}s")


def drop(deps, name: str, body: bytes) -> None:
    p = deps.store.path(f"landing/{name}")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(body)


@pytest.fixture
def deps(local_settings) -> Deps:
    return Deps.from_settings(local_settings)


def test_watch_scan_quarantines_bad_archives_good_and_starts_one_run(deps):
    drop(deps, "jan 2020.csv", good_csv())
    drop(deps, "feb.csv", good_csv(5))
    drop(deps, "wrong-columns.csv", BAD_FILES["wrong-columns.csv"])
    intake, record = process_landing_once(deps, wait_s=60)

    status = {f.key: f.status for f in intake.files}
    assert status == {
        "landing/jan 2020.csv": "accepted",
        "landing/feb.csv": "accepted",
        "landing/wrong-columns.csv": "quarantined",
    }
    assert record is not None and record.status == "succeeded" and record.trigger == "file"
    assert sorted(record.accepted_files) == ["feb.csv", "jan 2020.csv"]
    assert deps.store.list("landing/") == []
    assert deps.store.exists("quarantine/wrong-columns.csv.reason.json")
    wait_idle(deps)
    assert len(fake_runs()) == 1  # two good files in one scan: one run
    assert scan(deps, 0.0).intake is None  # nothing left to do


def test_runs_are_serialised_and_files_arriving_meanwhile_get_one_follow_up(deps):
    first = deps.launcher.request_run("file", ["raw/a.csv"])
    deadline = time.monotonic() + 20
    while not deps.launcher.is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert deps.launcher.is_running()
    second = deps.launcher.request_run("file", ["raw/b.csv"])
    third = deps.launcher.request_run("schedule", ["raw/c.csv"])
    assert first.status == "started"
    assert second.status == third.status == "pending"
    assert second.run_id == third.run_id != first.run_id
    assert third.files == ["raw/b.csv", "raw/c.csv"]

    assert wait_for_run(deps.store, third.run_id, 60).status == "succeeded"
    wait_idle(deps)
    done = fake_runs()
    assert [r[2] for r in done] == [first.run_id, second.run_id]  # exactly one follow-up
    assert done[0][1] <= done[1][0], "runs overlapped"
    req = list_requests(deps.store)[second.run_id]
    assert req.files == ["raw/b.csv", "raw/c.csv"] and req.exit_code == 0 and req.status == "finished"


def test_a_worker_is_not_turned_away_by_a_lock_probe(deps):
    """``is_running`` probes by taking the run lock for an instant; a worker that met a probe used to give
    up at once ("a run holds it, it will see the request") and the request waited for the next one."""
    import threading

    from fraud_detection.launcher import _merge_pending, _record_pending

    launcher = deps.launcher
    pend = _merge_pending(launcher.kv, launcher.pending_key, "manual", ["raw/a.csv"])
    _record_pending(deps.store, launcher.name, pend)
    probe = launcher._try_lock()
    assert probe.__enter__() is True  # a probe that holds the lock when the worker looks
    threading.Timer(0.2, probe.__exit__, (None, None, None)).start()
    assert launcher.drain() == 1
    assert wait_for_run(deps.store, pend["run_id"], 60).status == "succeeded"
    assert [r[2] for r in fake_runs()] == [pend["run_id"]]


def test_training_process_that_dies_leaves_a_failed_record(deps, monkeypatch):
    monkeypatch.setenv("FAKE_TRAIN_EXIT", "137")  # killed, no final record written
    launch = deps.launcher.request_run("manual", [])
    rec = wait_for_run(deps.store, launch.run_id, 60)
    assert rec is not None and rec.status == "failed" and "code 137" in rec.error
    assert deps.store.head("models/latest.json") is None


def test_watch_loop_command_is_bounded_and_does_not_resend(local_settings, monkeypatch, capsys):
    from fraud_detection import settings as settings_module

    for name in ("store_uri", "kv_backend", "launcher", "local_train_command"):
        monkeypatch.setenv(f"FRAUD_{name.upper()}", str(getattr(local_settings, name)))
    settings_module.get_settings.cache_clear()
    try:
        deps = Deps.from_settings(settings_module.get_settings())
        drop(deps, "mar.csv", good_csv())
        t0 = time.monotonic()
        rc = cli_main(["watch", "--max-seconds", "3", "--interval", "0.5", "--settle", "0.2"])
        elapsed = time.monotonic() - t0
        out = capsys.readouterr().out
        assert rc == 0 and elapsed < 10, (elapsed, out)
        assert out.count("accepted") == 1 and "training run" in out
        assert "1 file(s) handled" in out
        wait_idle(deps)

        rc = cli_main(["runs", "--json"])
        captured = capsys.readouterr()
        doc = json.loads(captured.out)  # the whole of stdout is the one document; the summary is on stderr
        assert captured.err.strip().splitlines()[-1].startswith("runs: 1 shown")
        (r,) = doc["runs"]
        assert r["trigger"] == "file" and r["status"] == "succeeded" and r["trigger_files"] == ["raw/mar.csv"]

        rc = cli_main(["retrain", "--trigger", "schedule", "--wait", "60"])
        err = capsys.readouterr().err
        assert rc == 0 and "retrain: succeeded" in err
        rc = cli_main(["runs"])
        captured = capsys.readouterr()
        assert rc == 0 and "schedule" in captured.out
        assert captured.err.strip().splitlines()[-1].startswith("runs: 2 shown (0 failed)")
        assert [r[4] for r in fake_runs()] == ["file", "schedule"]
    finally:
        settings_module.get_settings.cache_clear()


def test_stopping_the_launcher_mid_run_leaves_a_failed_record(deps, monkeypatch):
    import signal

    monkeypatch.setenv("FAKE_TRAIN_SECONDS", "30")
    launch = deps.launcher.request_run("manual", [])
    pid = None
    deadline = time.monotonic() + 20
    while pid is None and time.monotonic() < deadline:
        pid = deps.launcher.holder_pid()
        time.sleep(0.1)
    assert pid, "no worker took the run"
    time.sleep(1.5)  # the training process is running
    os.killpg(pid, signal.SIGTERM)  # e.g. the machine is shutting down
    rec = wait_for_run(deps.store, launch.run_id, 20)
    assert rec is not None and rec.status == "failed"
    assert "launcher stopped" in rec.error or "code -15" in rec.error, rec.error
