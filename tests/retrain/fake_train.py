"""Stand-in for ``glue/train_job.py`` in the launcher tests (no Spark).

Same arguments and run-record contract: writes ``runs/<run_id>.json`` (running, then succeeded), sleeps
``FAKE_TRAIN_SECONDS`` and appends ``start end run_id n_inputs`` to ``FAKE_TRAIN_LOG`` so tests can see
that runs never overlap. ``FAKE_TRAIN_EXIT`` = a code to die with, without writing a final record.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> int:
    from fraud_detection.runs import RunRecord, save_run
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    p = argparse.ArgumentParser()
    p.add_argument("--store_uri", required=True)
    p.add_argument("--input", required=True, help="comma-separated, as glue/train_job.py takes it")
    p.add_argument("--trigger", default="manual")
    p.add_argument("--run_id", required=True)
    args = p.parse_args()
    args.input = [i for i in args.input.split(",") if i]
    store = store_from_settings(get_settings())
    started = time.time()
    inputs = sorted(str(f) for d in args.input for f in Path(d).rglob("*.csv"))
    rec = RunRecord(run_id=args.run_id, trigger=args.trigger, started_at="now", inputs=args.input)
    save_run(store, rec)
    time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "1")))
    with open(os.environ["FAKE_TRAIN_LOG"], "a") as fh:
        fh.write(f"{started:.3f} {time.time():.3f} {args.run_id} {len(inputs)} {args.trigger}\n")
    if os.environ.get("FAKE_TRAIN_EXIT"):
        return int(os.environ["FAKE_TRAIN_EXIT"])
    rec.status, rec.accepted_files = "succeeded", [Path(i).name for i in inputs]
    rec.promotion = {"promoted": True, "reason": "fake", "champion_version": None}
    save_run(store, rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
