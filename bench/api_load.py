"""Load test of the scoring API against the HTTP floor and the typical Flask baseline, from separate processes.

One run, three servers on 127.0.0.1, each driven by ``wrk`` (a separate C process; Debian:
``apt-get install -y wrk``) at concurrency 1 and 32, for a bounded time each:

* ``api``: ``python -m fraud_cli serve`` (uvicorn, uvloop + httptools), one transaction per request,
  per-card history in SQLite (pre-filled with the cards' earlier transactions), prediction log on;
* ``bare``: a FastAPI endpoint returning a constant (``bench/api_bare.py``), same uvicorn settings;
* ``baseline``: Flask + gunicorn building a pandas DataFrame per request around a 100-tree random forest
  (``bench/api_baseline_flask.py``).

Then: a 1,000-transaction batch timed from the client. All of this ``--rounds`` times (3; this machine's
figures vary by 10-20% from one minute to the next), each round from the same fresh state; the docs show
the round with the median share of bare, and every round's headline figures. Last, a run at concurrency
32 during which the model is swapped twice (zero failed requests required). Figures go to
``bench/out/api/api_results.json``; ``--write-docs`` replaces the ``## Scoring API`` section of ``docs/benchmarks.md``.

    .venv/bin/python bench/api_load.py --duration 10 --write-docs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from api.auth import new_api_key  # noqa: E402
from api.fast_features import ListHistory, transaction_features  # noqa: E402
from bench.docs_section import report  # noqa: E402
from fraud_detection import artifacts, features  # noqa: E402
from fraud_detection.card_history import SqliteCardHistory  # noqa: E402
from fraud_detection.card_key import card_key  # noqa: E402
from fraud_detection.free_port import free_port  # noqa: E402
from fraud_detection.storage import LocalStore  # noqa: E402

SECTION = "## Scoring API"  # ours in docs/benchmarks.md

OUT = ROOT / "bench" / "out" / "api"  # only this folder is ours: bench/out holds other benchmarks too
LUA = ROOT / "bench" / "api_wrk_post.lua"
HASH_KEY = "bench-card-hash-key"
NUM = {"amt", "lat", "long", "merch_lat", "merch_long"}
INT = {"city_pop", "zip", "unix_time", "is_fraud"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def to_json(row: dict[str, str]) -> dict:
    return {k: float(v) if k in NUM else int(v) if k in INT else v for k, v in row.items()}


# --- setup ------------------------------------------------------------------------------------------


def train_features(rows: list[dict[str, str]]) -> np.ndarray:
    by_card: dict[str, list] = defaultdict(list)
    for r in rows:
        by_card[r["cc_num"]].append(features.history_record(r))
    hist = {c: ListHistory(sorted(recs)) for c, recs in by_card.items()}
    return np.array([transaction_features(r, hist[r["cc_num"]]) for r in rows])


def save_version(store: LocalStore, model, rows, X, y, cut: int, label: str, publish: bool) -> artifacts.Manifest:
    from sklearn.metrics import average_precision_score, roc_auc_score

    p = model.predict_proba(X[cut:])[:, 1]
    blob = artifacts.model_bytes(model)
    version = artifacts.new_version(blob)
    ts = [r["trans_date_trans_time"] for r in rows]
    manifest = artifacts.Manifest(
        version=version,
        created_at=artifacts.utc_now(),
        code_version=artifacts.code_version(),
        model_type="hgb",
        training_data={
            "train": artifacts.SplitCounts(rows=cut, frauds=int(y[:cut].sum()), start=ts[0], end=ts[cut - 1]),
            "test": artifacts.SplitCounts(rows=len(rows) - cut, frauds=int(y[cut:].sum()), start=ts[cut], end=ts[-1]),
        },
        features=artifacts.feature_specs(),
        threshold=artifacts.Threshold(value=0.5, method=f"fixed (benchmark, {label})"),
        metrics={
            "test": {"roc_auc": float(roc_auc_score(y[cut:], p)), "pr_auc": float(average_precision_score(y[cut:], p))}
        },
        libraries=artifacts.library_versions(),
        model_sha256=artifacts.sha256_hex(blob),
    )
    artifacts.save_artifact(
        store,
        version=version,
        model_blob=blob,
        manifest=manifest,
        metrics=manifest.metrics,
        report_html="<html></html>",
    )
    if publish:
        artifacts.publish_latest(store, manifest)
    return manifest


def prepare(rows_n: int, cards: int, seed: int) -> dict:
    from sklearn.base import clone
    from sklearn.ensemble import RandomForestClassifier

    from bench.api_baseline_flask import frame_features
    from fraud_detection.models import build_model
    from tools.generator import generate_rows

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    store = LocalStore(OUT / "store")
    rows = sorted(
        generate_rows(rows=rows_n, cards=cards, seed=seed), key=lambda r: (r["trans_date_trans_time"], r["trans_num"])
    )
    cut = int(len(rows) * 0.8)
    log(f"features for {len(rows)} rows")
    X = train_features(rows)
    y = np.array([int(r["is_fraud"]) for r in rows])
    log("training the default model (models.build_model('hgb')) and two more versions for the swap test")
    base = build_model("hgb", seed=0)
    first = clone(base).fit(X[:cut], y[:cut])
    v1_trees = first[-1].n_iter_
    v1 = save_version(store, first, rows, X, y, cut, "v1", publish=True)
    swaps = []
    for lr in (0.07, 0.09):  # smaller models (150 trees) keep the set-up short; they only serve the swap test
        m = clone(base).set_params(model__learning_rate=lr, model__max_iter=150).fit(X[:cut], y[:cut])
        swaps.append(save_version(store, m, rows, X, y, cut, f"lr={lr}", publish=False).version)
    log("baseline: 100-tree random forest on request-only features (pandas)")
    import joblib
    import pandas as pd

    df = pd.DataFrame(rows[:cut])
    rf = RandomForestClassifier(n_estimators=100, min_samples_leaf=2, max_features="sqrt", n_jobs=1, random_state=0)
    rf.fit(frame_features(df).to_numpy(dtype=np.float64), y[:cut])
    joblib.dump(rf, OUT / "baseline_rf.joblib")
    bodies = [json.dumps(to_json(r), separators=(",", ":")) for r in rows[cut:]]
    (OUT / "bodies.jsonl").write_text("\n".join(bodies) + "\n")
    setup = {
        "store": str(store.root),
        "v1": v1.version,
        "swaps": swaps,
        "bodies": len(bodies),
        "cards": cards,
        "trees": int(v1_trees),
        "train_rows": cut,
        "rows": rows_n,
        "seed": seed,
    }
    (OUT / "setup.json").write_text(json.dumps(setup, indent=2))
    return setup


def reset_state(setup: dict) -> None:
    """Fresh state for a run: latest -> v1, no prediction log, card history = the earlier transactions."""
    from tools.generator import generate_rows

    store = LocalStore(setup["store"])
    store.delete("state")
    artifacts.publish_latest(store, artifacts.read_manifest(store, setup["v1"]))
    rows = sorted(
        generate_rows(rows=setup["rows"], cards=setup["cards"], seed=setup["seed"]),
        key=lambda r: (r["trans_date_trans_time"], r["trans_num"]),
    )
    log("pre-filling the card history with the earlier transactions (what a running service holds)")
    hist = SqliteCardHistory(store.path("state/card_history.sqlite"))
    hist.append_many(
        [
            (card_key(r["cc_num"], HASH_KEY), r["trans_num"], features.history_record(r))
            for r in rows[: setup["train_rows"]]
        ]
    )
    hist.close()


# --- servers and load -------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, ready_path: str) -> None:
        self.name, self.port = name, port
        self.base = f"http://127.0.0.1:{port}"
        self.log_file = open(OUT / f"{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: see {OUT / (name + '.log')}")
            try:
                if httpx.get(self.base + ready_path, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not ready")

    def rss_mb(self) -> float:
        p = psutil.Process(self.proc.pid)
        return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)]) / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    return env


def api_settings_env(port: int, workers: int, key_entry: str) -> dict[str, str]:
    """The API's settings for the benchmark: its store under ``OUT``, rate limits out of the way."""
    return {
        "FRAUD_STORE_URI": str(OUT / "store"),
        "FRAUD_CARD_HASH_KEY": HASH_KEY,
        "FRAUD_API_KEYS": key_entry,
        "FRAUD_API_PORT": str(port),
        "FRAUD_API_HOST": "127.0.0.1",
        "FRAUD_API_WORKERS": str(workers),
        "FRAUD_API_RATE_LIMIT_PER_S": "1000000",
        "FRAUD_API_RATE_LIMIT_BURST": "1000000",
        "FRAUD_API_RELOAD_INTERVAL_S": "1",
    }


def start_api(workers: int, key_entry: str) -> Server:
    port = free_port()
    env = base_env() | api_settings_env(port, workers, key_entry)
    return Server("api", [sys.executable, "-m", "fraud_cli", "serve"], env, port, "/ready")


def start_bare(workers: int) -> Server:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.api_bare:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return Server("bare", cmd, base_env(), port, "/health")


def start_baseline(workers: int) -> Server:
    port = free_port()
    env = base_env()
    env["BASELINE_MODEL"] = str(OUT / "baseline_rf.joblib")
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "bench.api_baseline_flask:app",
    ]
    return Server("baseline", cmd, env, port, "/health")


def wrk(url: str, connections: int, duration: float, key: str | None) -> dict:
    threads = 1 if connections == 1 else 2
    env = {**os.environ, "BODIES": str(OUT / "bodies.jsonl"), "API_KEY": key or ""}
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(int(duration), 1)}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 60)
    line = next((x for x in r.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {r.stdout}\n{r.stderr}")
    out = json.loads(line[len("WRKJSON ") :])
    out["rps"] = out["requests"] / (out["duration_us"] / 1e6)
    out["errors"] = out["socket_errors"] + out["non2xx"]
    out["connections"] = connections
    return out


def measure(server: Server, key: str | None, duration: float) -> dict:
    url = server.base + "/v1/score"
    wrk(url, 4, 2, key)  # warm-up (imports, caches, SQLite pages)
    res = {"c1": wrk(url, 1, duration, key), "c32": wrk(url, 32, duration, key)}
    res["rss_mb"] = round(server.rss_mb(), 1)
    for c in ("c1", "c32"):
        r = res[c]
        log(
            f"{server.name} {c}: {r['rps']:.0f} req/s, p50 {r['p50_us'] / 1e3:.2f} ms, p99 {r['p99_us'] / 1e3:.2f} ms, "
            f"errors {r['errors']}"
        )
    return res


def batch_payloads(n: int = 1000, count: int = 3) -> list[bytes]:
    """``count`` batch request bodies of ``n`` consecutive transactions each."""
    bodies = (OUT / "bodies.jsonl").read_text().splitlines()
    return [('{"transactions":[' + ",".join(bodies[i * n : (i + 1) * n]) + "]}").encode() for i in range(count)]


def batch_latency(server: Server, key: str, n: int = 1000, repeats: int = 20, gap_s: float = 0.0) -> dict:
    """``repeats`` batches of ``n`` (after 2 untimed), back to back or ``gap_s`` apart; client and service
    latency."""
    payloads = batch_payloads(n)
    times, request_ids = [], []
    with httpx.Client(
        base_url=server.base, headers={"X-API-Key": key, "Content-Type": "application/json"}, timeout=30
    ) as c:
        for i in range(repeats + 2):
            time.sleep(gap_s)
            t = time.perf_counter()
            r = c.post("/v1/score/batch", content=payloads[i % 3])
            dt = time.perf_counter() - t
            if r.status_code != 200 or len(r.json()["results"]) != n:
                raise RuntimeError(f"batch failed: {r.status_code} {r.text[:200]}")
            if i >= 2:
                times.append(dt * 1e3)
                request_ids.append(r.json()["request_id"])
    inside = service_latencies_ms(request_ids)
    return {
        "n": n,
        "repeats": repeats,
        "p50_ms": statistics.median(times),
        "max_ms": max(times),
        "min_ms": min(times),
        "service_p50_ms": statistics.median(inside),
        "service_min_ms": min(inside),
        "body_bytes": len(payloads[0]),
    }


def service_latencies_ms(request_ids: list[str], timeout_s: float = 10.0) -> list[float]:
    """The service's own latency of each request (``latency_ms`` in its prediction log: from the request's
    arrival to its response body), once the log writer has written them (bounded wait)."""
    server_db = OUT / "store" / "state" / "prediction_log.sqlite"
    deadline = time.monotonic() + timeout_s
    while True:
        with sqlite3.connect(server_db) as conn:
            found = dict(
                conn.execute(
                    "SELECT request_id, MAX(latency_ms) FROM prediction_log"
                    " WHERE request_id IN (SELECT value FROM json_each(?)) GROUP BY request_id",
                    (json.dumps(request_ids),),
                ).fetchall()
            )
        if len(found) == len(request_ids) or time.monotonic() > deadline:
            if len(found) != len(request_ids):
                raise RuntimeError(f"{len(request_ids) - len(found)} batch requests missing from the prediction log")
            return [found[r] for r in request_ids]
        time.sleep(0.2)


def swap_under_load(server: Server, key: str, versions: list[str], duration: float) -> dict:
    import threading

    store = LocalStore(OUT / "store")
    result: dict = {}

    def load() -> None:
        result["wrk"] = wrk(server.base + "/v1/score", 32, duration, key)

    th = threading.Thread(target=load)
    th.start()
    published = []
    for i, v in enumerate(versions):
        time.sleep(duration / (len(versions) + 1) if i == 0 else duration / (len(versions) + 1))
        artifacts.publish_latest(store, artifacts.read_manifest(store, v))
        published.append((v, time.time()))
        log(f"published {v} under load")
    th.join()
    time.sleep(1.5)
    seen = set()
    for _ in range(10):
        seen.add(httpx.get(server.base + "/ready", timeout=5).json().get("model_version"))
    result["published"] = [v for v, _ in published]
    result["serving_after"] = sorted(seen)
    result["errors"] = result["wrk"]["errors"]
    log(
        f"swap under load: {result['wrk']['requests']} requests, errors {result['errors']}, "
        f"serving after {sorted(seen)}"
    )
    return result


def logged_versions() -> dict[str, int]:
    server_db = OUT / "store" / "state" / "prediction_log.sqlite"
    with sqlite3.connect(server_db) as conn:
        return dict(
            conn.execute("SELECT model_version, COUNT(*) FROM prediction_log GROUP BY model_version").fetchall()
        )


# --- report -----------------------------------------------------------------------------------------


def round_summary(one: dict) -> dict:
    """One round's headline figures (all servers measured in it)."""
    s = one["servers"]
    out: dict = {}
    if "api" in s:
        out.update(
            api_c32_rps=s["api"]["c32"]["rps"],
            api_c1_p50_ms=s["api"]["c1"]["p50_us"] / 1e3,
            api_c1_p99_ms=s["api"]["c1"]["p99_us"] / 1e3,
            batch_p50_ms=one["batch"]["p50_ms"],
            batch_service_p50_ms=one["batch"]["service_p50_ms"],
        )
    if "bare" in s:
        out["bare_c32_rps"] = s["bare"]["c32"]["rps"]
    if "baseline" in s:
        out["baseline_c32_rps"] = s["baseline"]["c32"]["rps"]
    if "api" in s and "bare" in s:
        out["share_of_bare"] = out["api_c32_rps"] / out["bare_c32_rps"]
    return out


def rounds_table(rounds: list[dict]) -> list[str]:
    """Every round's headline figures, so the spread between rounds is in view."""
    lines = [
        "",
        f"All {len(rounds)} rounds of this run (servers measured one after another in each round; the table "
        "above is the round with the median share of bare):",
        "",
        "| round | API c32 req/s | bare c32 req/s | share of bare | x baseline | c1 p50 / p99 ms | batch ms, client / "
        "service |",
        "| ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for i, r in enumerate(rounds, 1):
        lines.append(
            f"| {i} | {r['api_c32_rps']:,.0f} | {r['bare_c32_rps']:,.0f} | {r['share_of_bare']:.0%} | "
            f"{r['api_c32_rps'] / r['baseline_c32_rps']:.1f} | {r['api_c1_p50_ms']:.2f} / {r['api_c1_p99_ms']:.2f} | "
            f"{r['batch_p50_ms']:.1f} / {r['batch_service_p50_ms']:.1f} |"
        )
    return lines


def markdown(res: dict) -> str:
    s = res["servers"]
    a, b, base = s["api"], s["bare"], s["baseline"]

    def row(name: str, r: dict, c: str) -> str:
        x = r[c]
        return (
            f"| {name} | {x['connections']} | {x['rps']:,.0f} | {x['p50_us'] / 1e3:.2f} | {x['p99_us'] / 1e3:.2f} | "
            f"{x['errors']} | {r['rss_mb']:.0f} |"
        )

    ratio_base = a["c32"]["rps"] / base["c32"]["rps"]
    ratio_bare = a["c32"]["rps"] / b["c32"]["rps"]
    bt, sw = res["batch"], res["swap"]
    env = res["environment"]
    lines = [
        SECTION,
        "",
        f"Measured {res['measured_at']} by `bench/api_load.py` (`--duration {res['duration_s']:g}`) on this machine "
        f"({env['cpus']} cores, Python {env['python']}); load from `wrk` in a separate process "
        f"on the same 2 cores. Every server ran {res['workers']} worker processes on 127.0.0.1. One transaction per "
        f"request, each request a different transaction from the {res['setup']['bodies']:,} of a later period than "
        f"training ({res['setup']['cards']:,} cards), per-card history in SQLite pre-filled with "
        f"{res['setup']['train_rows']:,} earlier transactions, prediction log on; the model is "
        f"`models.build_model('hgb')` ({res['setup']['trees']} trees) scored by the exact compiled tree walk "
        "(`api/fast_model.py`).",
        "",
        "| server | connections | req/s | p50 ms | p99 ms | errors | RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("scoring API (`fraud serve`)", a, "c1"),
        row("scoring API (`fraud serve`)", a, "c32"),
        row("bare FastAPI constant", b, "c1"),
        row("bare FastAPI constant", b, "c32"),
        row("Flask + gunicorn + pandas + 100-tree RF", base, "c1"),
        row("Flask + gunicorn + pandas + 100-tree RF", base, "c32"),
        "",
        f"- At 32 connections the API does **{ratio_base:.1f}x** the baseline's req/s and **{ratio_bare:.0%}** of the "
        f"bare endpoint's (targets: >= 10x and >= 60%).",
        f"- At 1 connection: p50 **{a['c1']['p50_us'] / 1e3:.2f} ms**, p99 **{a['c1']['p99_us'] / 1e3:.2f} ms** "
        f"(targets: <= 1 ms and <= 5 ms).",
        f"- A batch of {bt['n']:,} transactions ({bt['body_bytes'] / 1e3:.0f} kB of JSON), timed by the client over "
        f"HTTP, {bt['repeats']} calls: median **{bt['p50_ms']:.1f} ms**, min {bt['min_ms']:.1f}, "
        f"max {bt['max_ms']:.1f} (target <= 20 ms)"
        + (
            f"; inside the service (its `latency_ms` in the prediction log, from the request's arrival to its "
            f"response body): median {bt['service_p50_ms']:.1f} ms, min {bt['service_min_ms']:.1f}."
            if "service_p50_ms" in bt  # results of runs before this figure existed
            else "."
        ),
        f"- Two model swaps during {sw['wrk']['requests']:,} requests at 32 connections: **{sw['errors']} failed** "
        f"(socket errors {sw['wrk']['socket_errors']}, non-2xx {sw['wrk']['non2xx']}); serving after the run: "
        f"{', '.join(sw['serving_after'])}; predictions logged per version: "
        + ", ".join(f"{k}: {v:,}" for k, v in sorted(res["logged_per_version"].items()))
        + ".",
        *(rounds_table(res["rounds"]) if len(res.get("rounds", [])) > 1 else []),
        "",
        f"Machine load while measuring: load average {res['load_average_before'][0]:.1f} before the run and "
        f"{res['load_average_after'][0]:.1f} / {res['load_average_after'][1]:.1f} / {res['load_average_after'][2]:.1f} "
        "(1 / 5 / 15 min) after it, on 2 cores (anything above the benchmark's own servers and wrk slows "
        "every row alike); compare the rows of one run with each other, not with other runs.",
        "",
        "Reproduce: `apt-get install -y wrk`, then `.venv/bin/python bench/api_load.py --duration 10 --write-docs` "
        "(about 10 minutes on this shared machine: data, three models, then three rounds of bounded wrk runs; "
        "`--reuse` skips the models, `--rounds 1` makes it one round).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured wrk run (bounded)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of every server")
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--cards", type=int, default=1_000)
    ap.add_argument("--reuse", action="store_true", help="reuse bench/out/api's models and data from an earlier run")
    ap.add_argument("--render", action="store_true", help="only re-render docs from bench/out/api/api_results.json")
    ap.add_argument("--only", nargs="*", default=None, help="servers to measure (api, bare, baseline)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        choices=range(1, 6),
        help="measure every server this many times; the docs show the round with the median share of bare",
    )
    ap.add_argument("--write-docs", action="store_true", help=f"replace the '{SECTION}' section of docs/benchmarks.md")
    args = ap.parse_args()
    if args.render:
        res = json.loads((OUT / "api_results.json").read_text())
        res.setdefault("load_average_before", [float("nan")] * 3)
        section = markdown(res)
        report(SECTION, section, write_docs=args.write_docs)
        return 0
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    if args.reuse and (OUT / "setup.json").exists():
        setup = json.loads((OUT / "setup.json").read_text())
        log(f"reusing the models and data in {OUT}")
    else:
        setup = prepare(args.rows, args.cards, seed=3)
    key, entry = new_api_key("bench")
    res: dict = {
        "load_average_before": os.getloadavg(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": args.duration,
        "workers": args.workers,
        "setup": setup,
        "environment": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    rounds = []
    for n in range(args.rounds):
        reset_state(setup)
        last = n == args.rounds - 1
        one: dict = {"servers": {}}
        for name, start, k in (("baseline", start_baseline, None), ("bare", start_bare, None), ("api", None, key)):
            if args.only and name not in args.only:
                continue
            server = start_api(args.workers, entry) if name == "api" else start(args.workers)
            try:
                one["servers"][name] = measure(server, k, args.duration)
                if name == "api":
                    one["batch"] = batch_latency(server, key)
                    log(f"batch of 1000: median {one['batch']['p50_ms']:.1f} ms")
                    if last:  # it moves latest on: once, after the last round's figures
                        res["swap"] = swap_under_load(server, key, setup["swaps"], max(args.duration, 10))
            finally:
                server.stop()
        rounds.append(one)
    res["rounds"] = [round_summary(r) for r in rounds]
    if not args.only:
        shares = [r["share_of_bare"] for r in res["rounds"]]
        res.update(rounds[shares.index(sorted(shares)[(len(shares) - 1) // 2])])  # the median round (lower)
    else:
        res.update(rounds[-1])
    res["logged_per_version"] = logged_versions() if "swap" in res else {}
    res["load_average_after"] = os.getloadavg()
    (OUT / "api_results.json").write_text(json.dumps(res, indent=2))
    if args.only:
        print(json.dumps(res["servers"], indent=2))
        return 0
    section = markdown(res)
    report(SECTION, section, write_docs=args.write_docs)
    ok = res["swap"]["errors"] == 0 and all(
        r["servers"][n][c]["errors"] == 0 for r in rounds for n in r["servers"] for c in ("c1", "c32")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
