"""``runs``: recent training runs — trigger, files, status, metrics and the promotion decision."""

from __future__ import annotations

import argparse
import json

from fraud_cli.output import emit_json, summary

NAME = "runs"
HELP = "List recent training runs: trigger, input files, status, metrics, promotion decision (and pending requests)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=10, help="how many runs, newest first (default 10)")
    p.add_argument("--run-id", default=None, help="show this run's full record")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _latest_version(store) -> str | None:
    if store.head("models/latest.json") is None:
        return None
    return json.loads(store.read_bytes("models/latest.json")).get("version")


def collect(store, limit: int = 10) -> dict:
    """Runs (newest first) joined with what asked for them, queued requests, and the served version."""
    from fraud_detection.launcher import list_requests
    from fraud_detection.runs import list_runs

    requests = list_requests(store)
    records = list_runs(store, limit=limit)
    have = {r.run_id for r in records}
    rows = []
    for r in records:
        req = requests.get(r.run_id)
        rows.append(
            {
                "run_id": r.run_id,
                "trigger": r.trigger,
                "status": r.status,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "trigger_files": req.files if req else [],
                "inputs": r.inputs,
                "accepted_files": r.accepted_files,
                "quarantined_files": r.quarantined_files,
                "version": r.version,
                "metrics": {
                    k: r.metrics.get(k) for k in ("roc_auc", "pr_auc", "precision", "recall") if k in r.metrics
                },
                "promotion": r.promotion,
                "error": r.error,
            }
        )
    queued = [
        q.model_dump()
        for q in sorted(requests.values(), key=lambda q: q.requested_at, reverse=True)
        if q.run_id not in have and q.status != "finished" and q.merged_into is None
    ]
    return {"latest": _latest_version(store), "runs": rows, "queued": queued}


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def run(args: argparse.Namespace) -> int:
    from fraud_detection.runs import load_run
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    store = store_from_settings(get_settings())
    if args.run_id:
        emit_json(load_run(store, args.run_id).model_dump(mode="json"))
        return 0
    doc = collect(store, args.limit)
    if args.json:
        emit_json(doc)
    else:
        for q in doc["queued"]:
            print(f"{q['run_id']}  {q['trigger']:<8} {q['status']:<9} waiting for the running job; files: {q['files']}")
        for r in doc["runs"]:
            m = r["metrics"]
            p = r["promotion"] or {}
            verdict = "promoted" if p.get("promoted") else "not promoted" if p else "-"
            print(
                f"{r['run_id']}  {r['trigger']:<8} {r['status']:<9} version {_fmt(r['version'])}  "
                f"roc_auc {_fmt(m.get('roc_auc'))}  pr_auc {_fmt(m.get('pr_auc'))}  {verdict}"
            )
            if r["trigger_files"]:
                print(f"    new files: {', '.join(r['trigger_files'])}")
            print(f"    trained on {len(r['accepted_files'])} file(s); quarantined {r['quarantined_files'] or 'none'}")
            if p.get("reason"):
                print(f"    promotion: {p['reason']}")
            if r["error"]:
                print(f"    error: {r['error']}")
    failed = sum(r["status"] == "failed" for r in doc["runs"])
    summary(
        f"runs: {len(doc['runs'])} shown ({failed} failed), {len(doc['queued'])} queued; "
        f"latest = {doc['latest'] or 'none'}"
    )
    return 0
