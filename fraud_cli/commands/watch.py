"""``watch``: the embedded stand-in for "S3 ObjectCreated -> Lambda": poll ``landing/`` and hand each new file
to the retraining handler's logic as the S3 event the bucket would send.

Runs beside the API (``fraud serve``). A file is taken once it has not changed for ``--settle`` seconds
(a copy into ``landing/`` may still be writing it). Training runs in a detached subprocess, so the
watcher keeps watching; runs are serialised and a file that lands during a run gets one follow-up run.
``process_landing_once`` is the function the demo calls: one scan, optionally waiting for the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

NAME = "watch"
HELP = "Watch landing/ for new CSVs: quarantine bad ones, archive good ones to raw/ and retrain (runs beside serve)."

log = logging.getLogger("fraud_detection.watch")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--once", action="store_true", help="scan landing/ once, then exit")
    p.add_argument(
        "--max-seconds", type=float, default=None, help="stop watching after this long (default: until Ctrl-C)"
    )
    p.add_argument(
        "--interval", type=float, default=None, help="seconds between scans (default FRAUD_WATCH_INTERVAL_S)"
    )
    p.add_argument(
        "--settle", type=float, default=None, help="take a file once unchanged this long (default FRAUD_WATCH_SETTLE_S)"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --once: wait up to this long for the training run it started, and show its outcome",
    )


@dataclass
class ScanResult:
    event: dict[str, Any] | None
    intake: Any  # IntakeResult | None
    unsettled: list[str]
    error: str | None = None


def _local_landing(root: Path) -> list[tuple[str, int, str, float]]:
    """(key, size, etag, mtime) of every entry under ``landing/``, hidden ones too, walked without following
    links: a link, a FIFO or a socket is an entry of its own (the intake quarantines a note for it)."""
    out: list[tuple[str, int, str, float]] = []
    stack = [(root / "landing", "landing/")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # taken away between the listing and the look
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append((Path(entry.path), f"{prefix}{entry.name}/"))
            else:
                out.append((prefix + entry.name, st.st_size, f"{st.st_mtime_ns}-{st.st_size}", st.st_mtime))
    return sorted(out)


def landing_event(deps, settle_s: float, skip: dict[str, str] | None = None) -> tuple[dict | None, list[str]]:
    """The S3-shaped event for the settled files under landing/ (one record each), and the unsettled keys."""
    from fraud_detection.storage import LocalStore, S3Store
    from retrain_lambda.events import s3_event

    store = deps.store
    bucket = store.bucket if isinstance(store, S3Store) else "local"
    now = time.time()
    if isinstance(store, LocalStore):
        found = _local_landing(store.root)
    else:
        found = [(o.key, o.size, o.etag, 0.0) for o in store.list("landing/")]
    records, unsettled = [], []
    for key, size, etag, mtime in found:
        if skip is not None and skip.get(key) == etag:
            continue
        if now - mtime < settle_s:
            unsettled.append(key)
            continue
        full = f"{store.prefix}/{key}" if isinstance(store, S3Store) and store.prefix else key
        records += s3_event(bucket, full, size=size, etag=etag, sequencer=f"{time.time_ns():X}")["Records"]
    return ({"Records": records} if records else None), unsettled


def scan(deps, settle_s: float, skip: dict[str, str] | None = None) -> ScanResult:
    """One scan: the settled new files go to the handler logic as one event (so one run covers them).
    Nothing a file does stops the watcher: an error is returned, and the file is looked at again."""
    from fraud_detection.idempotency import AlreadyInProgress
    from retrain_lambda.events import parse_s3_records
    from retrain_lambda.intake import IntakeIncomplete, process_objects

    try:
        event, unsettled = landing_event(deps, settle_s, skip)
    except Exception as exc:  # noqa: BLE001 - the store failed to list: look again next scan
        log.error("landing/ could not be listed", exc_info=True)
        return ScanResult(None, None, [], f"{type(exc).__name__}: {exc}")
    if event is None:
        return ScanResult(None, None, unsettled)
    try:
        return ScanResult(event, process_objects(parse_s3_records(event), deps), unsettled)
    except (AlreadyInProgress, IntakeIncomplete) as exc:  # the rest is done; these files wait for the next scan
        return ScanResult(event, None, unsettled, str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. the launcher failed: claims released, retried next scan
        log.error("landing/ scan failed; files stay for the next scan", exc_info=True)
        return ScanResult(event, None, unsettled, f"{type(exc).__name__}: {exc}")


def process_landing_once(deps=None, *, settle_s: float = 0.0, wait_s: float = 0.0, max_scans: int = 30):
    """Process what is in landing/ now (waiting for files still being written); with ``wait_s``, wait for
    the run it started or queued. Returns ``(IntakeResult | None, RunRecord | None)``."""
    from fraud_detection.launcher import wait_for_run
    from retrain_lambda.intake import Deps

    if deps is None:
        from fraud_detection.settings import get_settings

        deps = Deps.from_settings(get_settings())
    intake = None
    for _ in range(max_scans):
        res = scan(deps, settle_s)
        if res.intake is not None:
            intake = res.intake if intake is None else _merge(intake, res.intake)
        if not res.unsettled and res.error is None:
            break
        time.sleep(max(settle_s, 0.5))
    record = None
    if wait_s > 0 and intake is not None and intake.launch is not None:
        record = wait_for_run(deps.store, intake.launch.run_id, wait_s)
    return intake, record


def _merge(a, b):
    a.files += b.files
    a.launch = b.launch or a.launch
    return a


def _print_intake(intake) -> None:
    for f in intake.files:
        where = f.raw_key or f.quarantine_key or ""
        why = f" ({f.reason})" if f.reason else ""
        print(f"  {f.status:<11} {f.key} {'-> ' + where if where else ''}{why}")
    if intake.launch:
        ln = intake.launch
        print(f"  training run {ln.run_id}: {ln.status} ({len(ln.files)} new file(s))")


def run(args: argparse.Namespace) -> int:
    from fraud_detection.settings import get_settings
    from retrain_lambda.intake import Deps

    settings = get_settings()
    deps = Deps.from_settings(settings)
    settle = settings.watch_settle_s if args.settle is None else args.settle
    interval = settings.watch_interval_s if args.interval is None else args.interval
    print(f"watch: {deps.store.uri('landing/')} (launcher {deps.launcher.name})", file=sys.stderr)

    if args.once:
        intake, record = process_landing_once(deps, settle_s=settle, wait_s=args.wait)
        if intake is None:
            print("watch: nothing new in landing/")
            return 0
        _print_intake(intake)
        bad = sum(f.status == "quarantined" for f in intake.files)
        if record is not None:
            print(json.dumps({"run_id": record.run_id, "status": record.status, "version": record.version,
                              "promotion": record.promotion, "error": record.error}, indent=2))  # fmt: skip
        elif args.wait and intake.launch:
            print(f"watch: run {intake.launch.run_id} not finished after {args.wait:.0f}s", file=sys.stderr)
            return 1
        print(
            f"watch: {len(intake.files)} file(s), {bad} quarantined"
            + (f"; run {intake.launch.run_id} {intake.launch.status}" if intake.launch else "; no run started")
            + (f"; run ended {record.status}" if record else "")
        )
        return 1 if record is not None and record.status == "failed" else 0

    deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
    seen: dict[str, str] = {}  # key -> etag handed over already (a file left in landing/ is not resent)
    scans = files = 0
    while deadline is None or time.monotonic() < deadline:
        res = scan(deps, settle, seen)
        scans += 1
        if res.error:
            log.warning("landing/ scan deferred", extra={"error": res.error})
        if res.intake is not None:
            for rec in res.event["Records"]:
                key = unquote_plus(rec["s3"]["object"]["key"])
                seen[key] = rec["s3"]["object"]["eTag"]
            files += len(res.intake.files)
            _print_intake(res.intake)
            sys.stdout.flush()
        pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
        if pause <= 0:
            break
        time.sleep(pause)
    print(f"watch: stopped after {scans} scan(s), {files} file(s) handled")
    return 0
