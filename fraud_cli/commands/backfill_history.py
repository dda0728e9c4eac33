"""``backfill-history``: seed the API's per-card history store from the last training run's snapshot.

The training job writes ``features/card_history_snapshot/`` (each card's last 30 days: keyed card hash,
time, amount, category). Loading it into the online store (SQLite here, DynamoDB on AWS) before the API
takes traffic makes serving-time history features equal the training-time ones from the first request.
Re-running is harmless: rows are keyed by card and transaction id.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

NAME = "backfill-history"
HELP = "Load each card's recent history from the training snapshot into the API's card-history store."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=5_000, help="rows written per batch")


def run(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from fraud_detection.card_history import card_history_from_settings
    from fraud_detection.layout import HISTORY_SNAPSHOT
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    settings = get_settings()
    store = store_from_settings(settings)
    parts = [o.key for o in store.list(f"{HISTORY_SNAPSHOT}/") if o.key.endswith(".parquet")]
    if not parts:
        print(f"backfill-history: no snapshot at {store.uri(HISTORY_SNAPSHOT)}; run `fraud train` first")
        return 1
    history = card_history_from_settings(settings, store)
    rows = cards = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for key in parts:
                local = Path(tmp) / Path(key).name
                store.download(key, local)
                table = pq.read_table(local, columns=["card_key", "trans_num", "ts_s", "amt", "category_idx"])
                for batch in table.to_batches(max_chunksize=args.batch):
                    d = batch.to_pydict()
                    items = [
                        (ck, tn, (int(ts), float(amt), int(cat)))
                        for ck, tn, ts, amt, cat in zip(
                            d["card_key"], d["trans_num"], d["ts_s"], d["amt"], d["category_idx"], strict=True
                        )
                    ]
                    history.append_many(items)
                    rows += len(items)
                cards += len(set(table.column("card_key").to_pylist()))
    finally:
        history.close()
    print(f"backfill-history: {rows:,} transactions of {cards:,} cards loaded into the card-history store")
    return 0
