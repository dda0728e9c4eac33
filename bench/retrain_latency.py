"""Retraining latency: time from a new month's file dropped into ``landing/`` to the API serving the new model.

Embedded default, all real processes on this machine: ``fraud serve`` (scoring API) and ``fraud watch``
(the watcher that hands new files to the retraining handler, which starts the training job through the
local launcher). Defaults everywhere (watch interval / settle 2 s, API reload poll 5 s, ``local[*]``
Spark) except ``--driver-memory``.

1. generate ``--rows`` transactions over ``--months`` months, one file per month (``fraud generate
   --split-monthly``); all but the last month are the history, the last month is the new data;
2. bootstrap (not the headline figure, timed too): drop the history into ``landing/``, wait for version 1;
3. start the API on version 1; drop the new month (a copy into ``landing/``) and poll ``GET /ready``
   every 0.25 s until it reports another version; the breakdown comes from the run and launch records.

    .venv/bin/python bench/retrain_latency.py --rows 1000000 --write-docs

Results: ``bench/out/retrain/results.json``; ``--write-docs`` replaces the ``## Retraining`` section of
``docs/benchmarks.md``. ``--reuse`` keeps a store whose history is already trained (skips 1-2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "retrain"
sys.path.insert(0, str(ROOT))

from bench.docs_section import write_section  # noqa: E402
from fraud_detection.free_port import free_port  # noqa: E402

SECTION = "## Retraining"  # ours in docs/benchmarks.md


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def ts(s: str | None) -> float | None:
    return None if s is None else datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def served_version(base: str) -> str | None:
    try:
        r = httpx.get(f"{base}/ready", timeout=2.0)
    except httpx.TransportError:
        return None
    return r.json().get("model_version") if r.status_code == 200 else None


def wait(what: str, fn, timeout: float, procs: list[subprocess.Popen], poll: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[3]} exited with {p.returncode} while waiting for {what}")
        v = fn()
        if v:
            return v
        time.sleep(poll)
    raise TimeoutError(f"{what}: not after {timeout:.0f}s")


def drop(src: Path, landing: Path) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, landing / src.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in history + new month")
    ap.add_argument("--cards", type=int, default=1000)
    ap.add_argument("--months", type=int, default=24, help="months generated; the last one is the new data")
    ap.add_argument("--driver-memory", default="6g")
    ap.add_argument("--timeout", type=float, default=3600, help="bound on each wait, seconds")
    ap.add_argument("--reuse", action="store_true", help="reuse the work dir's store if version 1 exists")
    ap.add_argument(
        "--work-dir", type=Path, default=Path("/tmp/fraud-retrain-bench"), help="store and data (outside bench/out)"
    )
    ap.add_argument(
        "--bootstrap",
        choices=("train", "placeholder"),
        default="train",
        help="version 1: train it through the same loop (default), or put the history straight into raw/ and "
        "publish a small placeholder model without Spark (saves one full run; the measured run is the same)",
    )
    ap.add_argument("--write-docs", action="store_true", help=f"replace '{SECTION}' in docs/benchmarks.md")
    args = ap.parse_args()

    from api.auth import new_api_key
    from fraud_detection.launcher import LocalLauncher, list_requests
    from fraud_detection.runs import list_runs
    from fraud_detection.settings import Settings
    from fraud_detection.storage import LocalStore
    from tools.generator import generate_csv_monthly

    store_dir, data = args.work_dir / "store", args.work_dir / "data"
    landing, latest = store_dir / "landing", store_dir / "models" / "latest.json"
    years, month = divmod(args.months, 12)
    end = date(2019 + years, month + 1, 1) - timedelta(days=1)  # last day of the last month
    reuse = args.reuse and latest.exists() and (data / "months").is_dir()
    if not reuse:
        shutil.rmtree(args.work_dir, ignore_errors=True)
        log(f"generating {args.rows:,} rows, {args.cards:,} cards, 2019-01-01..{end}")
        gen = generate_csv_monthly(
            data / "months", rows=args.rows, cards=args.cards, start=date(2019, 1, 1), end=end, seed=5
        )
        log(f"generated in {gen.seconds:.1f}s: {gen.frauds:,} frauds, {len(gen.files)} files")
    files = sorted((data / "months").glob("*.csv"))
    history, new_month = files[:-1], files[-1]
    rows_of = {f.name: sum(1 for _ in open(f)) - 1 for f in files}  # noqa: SIM115

    key, entry = new_api_key("bench")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PYSPARK_PYTHON=sys.executable,
        FRAUD_STORE_URI=str(store_dir),
        FRAUD_SPARK_DRIVER_MEMORY=args.driver_memory,
        FRAUD_API_KEYS=entry,
        FRAUD_API_PORT=str(port),
    )
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    logs = args.work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def start(*cmd: str) -> subprocess.Popen:
        out = open(logs / f"{cmd[0]}.log", "ab")  # noqa: SIM115 - lives as long as the process
        p = subprocess.Popen([sys.executable, "-m", "fraud_cli", *cmd], env=env, cwd=ROOT, stdout=out,
                             stderr=subprocess.STDOUT)  # fmt: skip
        procs.append(p)
        return p

    store = LocalStore(store_dir)
    res: dict = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "env": {"cpus": os.cpu_count(), "python": platform.python_version(), "driver_memory": args.driver_memory},
        "history": {"files": len(history), "rows": sum(rows_of[f.name] for f in history)},
        "new_month": {"file": new_month.name, "rows": rows_of[new_month.name]},
    }
    try:
        start("watch", "--max-seconds", str(int(args.timeout * 3)))
        if not reuse and args.bootstrap == "placeholder":
            sys.path.insert(0, str(ROOT / "tests"))
            from factories import make_artifact

            from tools.generator import generate_rows

            (store_dir / "raw").mkdir(parents=True, exist_ok=True)
            for f in history:
                shutil.copyfile(f, store_dir / "raw" / f.name)
            t0 = time.monotonic()
            make_artifact(store, generate_rows(rows=4000, cards=150, seed=7), seed=0, max_iter=60, publish=True)
            res["bootstrap"] = "placeholder: history copied into raw/, version 1 a small model without Spark"
            res["bootstrap_s"] = round(time.monotonic() - t0, 1)
            log("bootstrap: placeholder version 1 published")
        elif not reuse:
            res["bootstrap"] = "trained through the same loop"
            log(f"bootstrap: dropping {len(history)} history files ({res['history']['rows']:,} rows)")
            t0 = time.monotonic()
            for f in history:
                drop(f, landing)
            wait("version 1", latest.exists, args.timeout, procs)
            res["bootstrap_s"] = round(time.monotonic() - t0, 1)
            log(f"version 1 after {res['bootstrap_s']}s")
        else:
            for f in landing.glob("*.csv"):
                f.unlink()
        v1 = json.loads(latest.read_text())["version"]
        start("serve")
        wait("API ready", lambda: served_version(base) == v1, 300, procs)
        log(f"API serving {v1}; dropping {new_month.name} ({res['new_month']['rows']:,} rows)")
        (store_dir / "raw" / new_month.name).unlink(missing_ok=True)  # --reuse: the month is new again
        res["env"]["load_avg_1m_at_drop"] = round(os.getloadavg()[0], 1)
        wall0, t0 = time.time(), time.monotonic()
        drop(new_month, landing)
        v2 = wait("new version served", lambda: (v := served_version(base)) != v1 and v, args.timeout, procs)
        total = time.monotonic() - t0
        res["env"]["load_avg_15m_at_served"] = round(os.getloadavg()[2], 1)
        # latest.json is written just before the job's final run record: wait for the record
        run = wait(
            "final run record",
            lambda: next((r for r in list_runs(store, 5) if r.version == v2 and r.status != "running"), None),
            600,
            procs,
        )
        req = list_requests(store)[run.run_id]
        pointer = json.loads(latest.read_text())
        started, finished, published = ts(run.started_at), ts(run.finished_at), ts(pointer["published_at"])
        res.update(
            drop_to_served_s=round(total, 1),
            version_before=v1,
            version_after=v2,
            run_id=run.run_id,
            breakdown_s={
                "drop_to_run_requested (watch interval + settle + header check + copy to raw/)": round(
                    ts(req.requested_at) - wall0, 1
                ),
                "requested_to_training_started (launcher + Python/Spark start)": round(
                    started - ts(req.requested_at), 1
                ),
                "training_job (run record started -> finished)": round(finished - started, 1),
                "published_to_served (API reload poll)": round(wall0 + total - published, 1),
            },
            stage_timings_s=run.timings_s,
            metrics={k: run.metrics.get(k) for k in ("roc_auc", "pr_auc")},
            promotion=run.promotion,
        )
        log(f"new version {v2} served {total:.1f}s after the drop")
    finally:
        pid = LocalLauncher(Settings(store_uri=str(store_dir)), store).holder_pid()
        if pid:
            import signal

            os.killpg(pid, signal.SIGTERM)
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    if args.write_docs:
        write_section(SECTION, section(res))
    return 0


def section(res: dict) -> str:
    b = res["breakdown_s"]
    lines = [
        SECTION,
        "",
        f"Measured {res['measured_at']} by `bench/retrain_latency.py` on this machine ({res['env']['cpus']} cores "
        f"shared with other work, Python {res['env']['python']}, Spark `local[*]`, driver memory "
        f"{res['env']['driver_memory']}; load average {res['env']['load_avg_1m_at_drop']} at the drop, "
        f"{res['env']['load_avg_15m_at_served']} over the last 15 min when served: other jobs shared the cores). "
        "Embedded default, every part a real process: `fraud serve` (API, reload "
        "poll 5 s), `fraud watch` (interval 2 s, settle 2 s), the local launcher running the training job.",
        "",
        f"History: {res['history']['rows']:,} generated transactions in {res['history']['files']} monthly files, "
        f"version 1 {res.get('bootstrap', 'reused from an earlier run')}. New data: one month, "
        f"`{res['new_month']['file']}`, {res['new_month']['rows']:,} rows, copied into `landing/`.",
        "",
        f"**File dropped -> new version served by the API: {res['drop_to_served_s']:.0f} s** "
        f"({res['drop_to_served_s'] / 60:.1f} min).",
        "",
        "| step | seconds |",
        "| --- | ---: |",
        *[f"| {k} | {v:.1f} |" for k, v in b.items()],
        "",
        "Training job stages (run record `timings_s`): "
        + ", ".join(f"{k} {v:.0f}" for k, v in res["stage_timings_s"].items())
        + f". Held-out metrics of the new version: ROC-AUC {res['metrics']['roc_auc']:.4f}, PR-AUC "
        f"{res['metrics']['pr_auc']:.4f}; promotion: {res['promotion']['reason']}.",
        "",
        "Record timestamps have one-second resolution, so the steps are +-1 s each. Almost all of the time is the "
        "training job re-reading and re-validating the whole history (every run retrains on all of `raw/`).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
