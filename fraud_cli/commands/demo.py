"""``demo``: the whole loop on the embedded default, end to end.

generate a year of monthly files -> drop them into landing/ -> intake (validate header, copy to raw/)
-> one training run on local Spark -> start the API -> score -> drop a new month into landing/ ->
retrain (promotion gate) -> the running API answers with the new version by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

from fraud_detection.free_port import free_port

NAME = "demo"
HELP = "Run the whole loop locally: generate, train on Spark, serve, score, drop a new month, retrain, serve it."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", type=int, default=260_000, help="transactions over the 13 months (default 260,000)")
    p.add_argument("--cards", type=int, default=600, help="cards (default 600)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=Path("data/demo"), help="where the monthly CSVs are written")
    p.add_argument("--timeout", type=float, default=1800, help="seconds to wait for each training run")
    p.add_argument("--keep-serving", action="store_true", help="leave the API running at the end (Ctrl-C stops it)")


def _say(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def _http(method: str, url: str, key: str | None = None, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (our own 127.0.0.1 URL)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _wait_for(predicate, timeout_s: float, what: str, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, urllib.error.URLError, KeyError, TypeError):
            value = None
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _examples(csv_path: Path, n: int = 3) -> list[dict[str, str]]:
    """A few transactions of the new month, frauds first, as the API takes them (Kaggle column names)."""
    import csv

    from fraud_detection.contract import COLUMNS, LABEL

    def typed(c, v: str):  # JSON types from the contract: the API does not coerce strings to numbers
        return float(v) if c.dtype == "double" else int(v) if c.dtype in ("int", "long") else v

    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the month's first fraud: the API has that card's full history up to it (backfilled + what it scored)
    frauds = sorted((r for r in rows if r[LABEL] == "1"), key=lambda r: r["trans_date_trans_time"])
    picked = frauds[:1] + [r for r in rows if r[LABEL] == "0"][: n - 1]
    picked.sort(key=lambda r: r["trans_date_trans_time"])  # scored in time order, as the API would see them
    return [{c.name: typed(c, r[c.name]) for c in COLUMNS if c.name != LABEL} | {"_label": r[LABEL]} for r in picked]


def _score_all(base: str, key: str, examples: list[dict[str, str]]) -> str | None:
    version = None
    for ex in examples:
        body = {k: v for k, v in ex.items() if not k.startswith("_")}
        status, out = _http("POST", f"{base}/v1/score", key, body)
        if status != 200:
            raise RuntimeError(f"scoring failed: HTTP {status}: {out}")
        version = out["model"]["version"]
        print(
            f"  {body['trans_date_trans_time']} {body['category']:<14} ${float(body['amt']):>8.2f}  "
            f"label={ex['_label']}  p(fraud)={out['fraud_probability']:.4f}  flagged={out['is_fraud']}  "
            f"model={version}"
        )
    return version


def run(args: argparse.Namespace) -> int:
    from api.auth import new_api_key
    from fraud_cli.commands.watch import process_landing_once
    from fraud_detection.artifacts import read_latest
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import LocalStore, store_from_settings
    from tools.generator import generate_csv_monthly

    settings = get_settings()
    store = store_from_settings(settings)
    if not isinstance(store, LocalStore):
        print("demo: runs on the embedded default (a local FRAUD_STORE_URI)", file=sys.stderr)
        return 2
    started = time.monotonic()

    _say(f"1/6 generating {args.rows:,} transactions for {args.cards} cards, Jan 2019 .. Jan 2020, one file a month")
    summary = generate_csv_monthly(
        args.data_dir, rows=args.rows, cards=args.cards, start=date(2019, 1, 1), end=date(2020, 1, 31), seed=args.seed
    )
    files = sorted(Path(f) for f in summary.files)
    history, new_month = files[:-1], files[-1]
    print(f"  {summary.rows:,} rows, {summary.frauds:,} frauds, {len(files)} files in {args.data_dir}/")

    _say(f"2/6 dropping {len(history)} months into {store.uri('landing/')} and training on local Spark")
    for f in history:
        store.upload(f, f"landing/{f.name}")
    intake, record = process_landing_once(wait_s=args.timeout)
    if record is None or record.status not in ("succeeded", "rejected"):
        print(f"demo: the first training run did not finish well: {record and record.error}", file=sys.stderr)
        return 1
    print(
        f"  run {record.run_id}: {record.status}, model {record.version}, test PR-AUC "
        f"{record.metrics.get('pr_auc', float('nan')):.4f}, ROC-AUC {record.metrics.get('roc_auc', float('nan')):.4f}"
    )
    print(f"  report: {store.uri(f'models/{record.version}/report.html')}")

    from fraud_cli.commands import backfill_history

    backfill_history.run(argparse.Namespace(batch=5_000))  # the API starts with each card's recent history

    _say("3/6 starting the scoring API on 127.0.0.1")
    key, entry = new_api_key("demo")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = os.environ | {"FRAUD_API_KEYS": entry, "FRAUD_API_RELOAD_INTERVAL_S": "2", "FRAUD_STORE_URI": str(store.root)}
    api = subprocess.Popen([sys.executable, "-m", "fraud_cli", "serve", "--port", str(port)], env=env)
    try:
        _wait_for(lambda: _http("GET", f"{base}/ready")[0] == 200, 120, "the API to be ready")
        print(f"  ready at {base} (docs: {base}/docs)")

        _say(f"4/6 scoring transactions of the new month ({new_month.name}) with model {read_latest(store).version}")
        examples = _examples(new_month)
        before = _score_all(base, key, examples)

        _say(f"5/6 dropping {new_month.name} into landing/: intake, retraining, promotion gate")
        shutil.copyfile(new_month, store.path(f"landing/.{new_month.name}.part"))
        os.replace(store.path(f"landing/.{new_month.name}.part"), store.path(f"landing/{new_month.name}"))
        _, record = process_landing_once(wait_s=args.timeout)
        if record is None:
            print("demo: the retraining run did not finish in time", file=sys.stderr)
            return 1
        promo = record.promotion or {}
        print(f"  run {record.run_id}: {record.status}; {promo.get('reason', record.error)}")

        _say("6/6 asking the running API which model answers now")
        # a promoted run's record is final a moment before latest.json moves: wait for that exact version
        latest = record.version if (record.promotion or {}).get("promoted") else read_latest(store).version
        served = _wait_for(
            lambda: (v := _http("GET", f"{base}/v1/model", key)[1]["manifest"]["version"]) == latest and v,
            60,
            f"the API to serve {latest}",
        )
        after = _score_all(base, key, examples)
        changed = "a NEW version" if after != before else "the same version (the challenger was not better)"
        print(f"  the API now answers with {served}: {changed}")
        print(
            f"\ndemo: done in {time.monotonic() - started:.0f}s. Runs: `pipenv run fraud runs`; "
            f"reports under {store.uri('models/')}; Data Docs under {store.uri('reports/validation/')}"
        )
        if args.keep_serving:
            print(f"demo: API still serving at {base} with key {key} (Ctrl-C to stop)")
            api.wait()
        return 0
    finally:
        if api.poll() is None:
            api.send_signal(signal.SIGTERM)
            try:
                api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                api.kill()
