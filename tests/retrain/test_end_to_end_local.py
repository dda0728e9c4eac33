"""The whole loop in the embedded default, for real: the API (``fraud serve``) and the watcher (``fraud watch``)
run as processes; files dropped into ``landing/`` are checked, archived, trained on by local Spark (the
training job, through the local launcher) and the API picks the promoted model up by itself.

1. seven months of history (one file) dropped -> one run -> version 1 published (no champion yet); API started on it;
2. a broken file dropped -> quarantined with its reason, no run, the API still serves version 1;
3. the eighth month dropped -> one run -> version 2 promoted and served within ``BOUND_S``;
4. a label-shuffled file dropped -> trained on, NOT promoted (reason in its manifest), API still on version 2.

Promotion tolerance is 0.02 here (default 0.002): with ~90 frauds in the held-out period the PR-AUC of two
good models differs by more than 0.002 from sampling alone, and this test is about the loop, not the gate's
margin (the gate has its own tests in the pipeline suite).
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pytest

from fraud_detection.free_port import free_port
from fraud_detection.runs import list_runs
from tools.generator import generate_csv, generate_csv_monthly

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 900.0  # file dropped -> new version served (2 cores shared with other jobs: ~2-7 min measured)


def shuffle_labels(src: Path, dst: Path, seed: int = 0) -> None:
    with open(src, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    i = header.index("is_fraud")
    labels = [r[i] for r in body]
    random.Random(seed).shuffle(labels)
    for r, label in zip(body, labels, strict=True):
        r[i] = label
    with open(dst, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *body])


def concat(files: list[Path], dst: Path) -> None:
    with open(dst, "w") as out:
        for i, f in enumerate(files):
            lines = f.read_text().splitlines(keepends=True)
            out.writelines(lines if i == 0 else lines[1:])


def served_version(base: str) -> str | None:
    try:
        r = httpx.get(f"{base}/ready", timeout=2.0)
    except httpx.TransportError:
        return None
    return r.json().get("model_version") if r.status_code == 200 else None


def wait_until(what: str, fn, timeout: float, procs=(), poll: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args[3]} exited with {p.returncode} while waiting for {what}"
        value = fn()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def stop_training(store_dir: Path) -> None:
    """A run the test left going (it failed early): stop the launcher worker and its training process."""
    import signal

    from fraud_detection.launcher import LocalLauncher
    from fraud_detection.settings import Settings
    from fraud_detection.storage import LocalStore

    pid = LocalLauncher(Settings(store_uri=str(store_dir)), LocalStore(store_dir)).holder_pid()
    if pid:
        try:
            os.killpg(pid, signal.SIGTERM)  # the worker was started in its own session: its group is ours
        except ProcessLookupError:
            pass


def final_newest_run(store, procs):
    """The newest run record once final: the job writes latest.json just before its final record."""
    return wait_until(
        "the run record to be final", lambda: (r := list_runs(store, 1)[0]).status in ("succeeded", "rejected",
                                                                                          "failed") and r, 120, procs,
    )  # fmt: skip


def drop(src: Path, landing: Path) -> None:
    """Copy into landing/ the way a user would (the watcher waits for the file to settle)."""
    landing.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, landing / src.name)


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.timeout(2700)  # three training runs; on 2 shared cores each took 4-8 min
def test_drop_retrain_promote_serve_reject(tmp_path):
    from api.auth import new_api_key

    store_dir, data = tmp_path / "store", tmp_path / "data"
    landing = store_dir / "landing"
    months = generate_csv_monthly(
        data / "months", rows=35_000, cards=150, start=date(2019, 1, 1), end=date(2019, 8, 31), seed=11,
        fraud_rate=0.01,
    ).files  # fmt: skip
    history, new_month = data / "history_2019-01_07.csv", Path(months[-1])
    concat([Path(f) for f in months[:-1]], history)  # one file: the job validates file by file
    noisy = data / "noisy"
    # ~3x the real rows, labels shuffled: most positives of the held-out period become noise
    generate_csv(
        noisy, rows=100_000, cards=400, start=date(2019, 1, 1), end=date(2019, 8, 31), seed=99, fraud_rate=0.01
    )
    shuffled = data / "relabelled_2019.csv"
    shuffle_labels(noisy, shuffled)
    broken = data / "export_broken.csv"
    broken.write_text("when,card,amount\nyesterday,1234,lots\n")

    key, entry = new_api_key("e2e")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PYSPARK_PYTHON=sys.executable,
        FRAUD_STORE_URI=str(store_dir),
        FRAUD_SPARK_MASTER="local[2]",
        FRAUD_SPARK_DRIVER_MEMORY="2g",
        FRAUD_MAX_TRAINING_ROWS="30000",
        FRAUD_PROMOTION_TOLERANCE="0.02",
        FRAUD_API_KEYS=entry,
        FRAUD_API_PORT=str(port),
        FRAUD_API_RELOAD_INTERVAL_S="1",
        FRAUD_WATCH_INTERVAL_S="1",
        FRAUD_WATCH_SETTLE_S="1",
    )
    base = f"http://127.0.0.1:{port}"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []

    def start(*cmd: str) -> subprocess.Popen:
        out = open(logs / f"{cmd[0]}.log", "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen([sys.executable, "-m", "fraud_cli", *cmd], env=env, cwd=ROOT, stdout=out,
                             stderr=subprocess.STDOUT)  # fmt: skip
        procs.append(p)
        return p

    from fraud_detection.storage import LocalStore

    store = LocalStore(store_dir)
    latest = store_dir / "models" / "latest.json"
    timings: dict[str, float] = {}
    try:
        start("watch", "--max-seconds", "1500")
        # 1. history -> first version
        t0 = time.monotonic()
        drop(history, landing)
        wait_until("version 1 published", latest.exists, 600, procs)
        v1 = json.loads(latest.read_text())["version"]
        timings["history_to_v1_s"] = time.monotonic() - t0
        run1 = final_newest_run(store, procs)
        assert run1.status == "succeeded" and run1.trigger == "file" and run1.accepted_files == [history.name]

        start("serve")
        assert wait_until("API ready", lambda: served_version(base), 90, procs) == v1

        # 2. broken file: quarantined, starts nothing, the API keeps serving
        drop(broken, landing)
        wait_until("quarantine", (store_dir / "quarantine" / f"{broken.name}.reason.json").exists, 60, procs)
        reason = json.loads((store_dir / "quarantine" / f"{broken.name}.reason.json").read_text())
        assert "missing=" in reason["error"]
        assert not (landing / broken.name).exists() and not (store_dir / "raw" / broken.name).exists()
        time.sleep(3)
        assert len(list_runs(store)) == 1 and served_version(base) == v1

        # 3. a new month: retrained, promoted, served
        t0 = time.monotonic()
        drop(new_month, landing)
        v2 = wait_until("a new version served", lambda: (v := served_version(base)) != v1 and v, BOUND_S, procs)
        timings["new_month_to_served_s"] = time.monotonic() - t0
        run2 = final_newest_run(store, procs)
        assert run2.status == "succeeded" and run2.version == v2 and run2.promotion["promoted"]
        assert run2.promotion["champion_version"] == v1
        assert (store_dir / "raw" / new_month.name).exists()
        txn = next(csv.DictReader(open(new_month)))  # noqa: SIM115
        body = {k: v for k, v in txn.items() if k}
        for k in ("amt", "lat", "long", "merch_lat", "merch_long"):
            body[k] = float(body[k])
        for k in ("city_pop", "zip", "unix_time", "is_fraud"):
            body[k] = int(body[k])
        r = httpx.post(f"{base}/v1/score", json=body, headers={"X-API-Key": key}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["model"]["version"] == v2

        # 4. label-shuffled data: trained on, not promoted, the API stays on version 2
        drop(shuffled, landing)
        run3 = wait_until(
            "the shuffled-label run to end",
            lambda: (rs := list_runs(store)) and rs[0].run_id != run2.run_id and rs[0].status in ("rejected", "failed")
            and rs[0],
            600, procs,
        )  # fmt: skip
        assert run3.status == "rejected", run3.error
        assert run3.promotion["promoted"] is False and run3.promotion["reason"]
        manifest = json.loads((store_dir / "models" / run3.version / "manifest.json").read_text())
        assert manifest["promotion"]["promoted"] is False and manifest["promotion"]["reason"]
        time.sleep(3)  # > the API's reload interval
        assert json.loads(latest.read_text())["version"] == v2 and served_version(base) == v2
        print(f"\nretraining e2e: {json.dumps({k: round(v, 1) for k, v in timings.items()})}; "
              f"rejected: {run3.promotion['reason']}")  # fmt: skip
    finally:
        stop_training(store_dir)
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in sorted(logs.glob("*.log")):
            tail = f.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {f.name} (tail)\n" + "\n".join(tail))
