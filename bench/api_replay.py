"""A year of generated traffic replayed through the scoring API in time order, latency per month.

What a fresh store pre-filled with a few earlier transactions per card does not show: the cost of a
request follows how much history each card holds in its 30-day window, which grows while the history
fills and with the season (December). So the service starts from an empty history and scores a year
(``--rows`` transactions over ``--cards`` cards, generated), in time order: each ``--batch`` consecutive
transactions go as one ``/v1/score/batch`` call, and the ``--singles`` after them as single ``/v1/score``
calls. One API worker (``python -m fraud_cli serve``, 127.0.0.1), one client, requests back to back.

The latency is the service's own (``latency_ms`` in its prediction log: from the request's arrival to its
response body), grouped by the month of the transactions. Beside it: the card-history rows the service
holds at each month's end (pruned by transaction time) and the prediction log's rows. Goals (issue 16):
a batch of 1,000 at most 60 ms and single requests' p99 at most 5 ms in the service, in every month.

Bounded: ``--rows`` rows and ``--max-minutes`` of replay. Needs the model of ``bench/api_load.py``
(``bench/out/api``; made here if missing). ``--write-docs`` replaces its section of ``docs/benchmarks.md``.

    .venv/bin/python bench/api_replay.py --write-docs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from api.auth import new_api_key  # noqa: E402
from bench import api_load  # noqa: E402
from bench.docs_section import report  # noqa: E402
from fraud_detection import artifacts  # noqa: E402
from fraud_detection.storage import LocalStore  # noqa: E402

SECTION = "## Scoring API: a year replayed"
BATCH_GOAL_MS, SINGLE_P99_GOAL_MS = 60.0, 5.0


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608 - our table names


def replay(server: api_load.Server, key: str, rows: list[dict], batch: int, singles: int, max_s: float) -> dict:
    """Send the rows in time order; returns request id -> (kind, month) and per-month state sizes."""
    state = api_load.OUT / "store" / "state"
    sent: dict[str, tuple[str, str]] = {}
    sizes: dict[str, dict[str, int]] = {}
    deadline = time.monotonic() + max_s
    step = batch + singles
    with httpx.Client(base_url=server.base, headers={"X-API-Key": key}, timeout=60) as c:
        for start in range(0, len(rows), step):
            if time.monotonic() > deadline:
                break
            chunk = rows[start : start + batch]
            month = chunk[0]["trans_date_trans_time"][:7]
            body = '{"transactions":[' + ",".join(json.dumps(api_load.to_json(r)) for r in chunk) + "]}"
            r = c.post("/v1/score/batch", content=body, headers={"Content-Type": "application/json"})
            if r.status_code != 200:
                raise RuntimeError(f"batch failed: {r.status_code} {r.text[:300]}")
            sent[r.json()["request_id"]] = ("batch", month)
            for row in rows[start + batch : start + step]:
                r = c.post("/v1/score", json=api_load.to_json(row))
                if r.status_code != 200:
                    raise RuntimeError(f"single failed: {r.status_code} {r.text[:300]}")
                sent[r.json()["request_id"]] = ("single", row["trans_date_trans_time"][:7])
            nxt = rows[start + step]["trans_date_trans_time"][:7] if start + step < len(rows) else None
            if nxt != month:  # the month's last request: the state it leaves
                time.sleep(1.2)  # one flush interval and more: the history's buffer is written
                sizes[month] = {
                    "history_rows": _count(state / "card_history.sqlite", "card_history"),
                    "log_rows": _count(state / "prediction_log.sqlite", "prediction_log"),
                }
    return {"sent": sent, "sizes": sizes}


def latencies_by_month(sent: dict[str, tuple[str, str]]) -> dict[str, dict[str, list[float]]]:
    ids = list(sent)
    found: dict[str, float] = {}
    for i in range(0, len(ids), 5000):
        found.update(zip(ids[i : i + 5000], api_load.service_latencies_ms(ids[i : i + 5000], 30), strict=True))
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"batch": [], "single": []})
    for rid, (kind, month) in sent.items():
        out[month][kind].append(found[rid])
    return dict(sorted(out.items()))


def markdown(res: dict) -> str:
    s = res["settings"]
    lines = [
        SECTION,
        "",
        f"`bench/api_replay.py`, {res['measured_at']} on {res['environment']['cpus']} CPUs, Python "
        f"{res['environment']['python']}; load average {res['load_before'][0]:.1f} before, "
        f"{res['load_after'][0]:.1f} after. {s['rows']:,} generated transactions of {s['cards']} cards "
        f"({s['start']} to {s['end']}, seed {s['seed']}) replayed in time order through one API worker from an "
        f"empty card history: each {s['batch']:,} consecutive transactions as one batch call, the {s['singles']} "
        f"after them as single calls, back to back from one client; {res['replayed_rows']:,} rows sent in "
        f"{res['replay_s']:.0f} s. Latency is the service's own (`latency_ms` of the prediction log), per month "
        "of the transactions. Goals: a batch of 1,000 at most 60 ms, single calls' p99 at most 5 ms, every month.",
        "",
        "| month | batches | batch p50 ms | batch max ms | singles | single p50 ms | single p99 ms | "
        "card-history rows at month end | prediction-log rows |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for month, m in res["months"].items():
        lines.append(
            f"| {month} | {m['batches']} | {m['batch_p50']:.1f} | {m['batch_max']:.1f} | {m['singles']} | "
            f"{m['single_p50']:.2f} | {m['single_p99']:.2f} | {m['history_rows']:,} | {m['log_rows']:,} |"
        )
    held = [v["history_rows"] for v in list(res["months"].values())[1:]] or [0]
    window_rows = res["replayed_rows"] / 366 * 35
    met_b = [m for m, v in res["months"].items() if v["batch_max"] <= BATCH_GOAL_MS]
    met_s = [m for m, v in res["months"].items() if v["single_p99"] <= SINGLE_P99_GOAL_MS]
    n = len(res["months"])
    lines += [
        "",
        f"Batch goal (every batch of the month at most {BATCH_GOAL_MS:.0f} ms): met in {len(met_b)} of {n} months. "
        f"Single goal (p99 at most {SINGLE_P99_GOAL_MS:.0f} ms): met in {len(met_s)} of {n} months.",
        "",
        f"Card history at the month ends after the first: {min(held):,} to {max(held):,} rows; 35 days of this "
        f"traffic are about {window_rows:,.0f} rows (it keeps the 35 days before its newest transaction, pruned "
        f"by their time). The prediction log keeps up to `FRAUD_PREDICTION_LOG_MAX_ROWS` rows.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=240_000, help="transactions in the replayed year")
    ap.add_argument("--cards", type=int, default=900)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--singles", type=int, default=20, help="single calls after each batch")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--max-minutes", type=float, default=20.0, help="stop replaying after this long")
    ap.add_argument("--write-docs", action="store_true", help=f"replace the '{SECTION}' section of docs")
    args = ap.parse_args()
    from tools.generator import generate_rows

    if not (api_load.OUT / "setup.json").exists():
        api_load.prepare(60_000, 1_000, seed=3)
    setup = json.loads((api_load.OUT / "setup.json").read_text())
    store = LocalStore(setup["store"])
    store.delete("state")  # an empty history and log: the replay fills them
    artifacts.publish_latest(store, artifacts.read_manifest(store, setup["v1"]))
    start, end = date(2020, 1, 1), date(2020, 12, 31)
    api_load.log(f"generating {args.rows:,} transactions of {args.cards} cards, {start} to {end}")
    rows = sorted(
        generate_rows(rows=args.rows, cards=args.cards, start=start, end=end, seed=args.seed),
        key=lambda r: (r["trans_date_trans_time"], r["trans_num"]),
    )
    key, entry = new_api_key("bench")
    load_before = os.getloadavg()
    server = api_load.start_api(1, entry)
    try:
        t0 = time.monotonic()
        done = replay(server, key, rows, args.batch, args.singles, args.max_minutes * 60)
        replay_s = time.monotonic() - t0
    finally:
        server.stop()
    by_month = latencies_by_month(done["sent"])
    months = {}
    for month, lat in by_month.items():
        b, s1 = lat["batch"], lat["single"]
        months[month] = {
            "batches": len(b),
            "batch_p50": statistics.median(b),
            "batch_max": max(b),
            "singles": len(s1),
            "single_p50": statistics.median(s1) if s1 else float("nan"),
            "single_p99": float(np.percentile(s1, 99)) if s1 else float("nan"),
            **done["sizes"].get(month, {"history_rows": 0, "log_rows": 0}),
        }
    res = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args) | {"start": str(start), "end": str(end)},
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "replayed_rows": sum(m["batches"] for m in months.values()) * args.batch
        + sum(m["singles"] for m in months.values()),
        "replay_s": replay_s,
        "months": months,
    }
    (api_load.OUT / "replay_results.json").write_text(json.dumps(res, indent=2))
    report(SECTION, markdown(res), write_docs=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
