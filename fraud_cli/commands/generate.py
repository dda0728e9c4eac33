"""``generate``: write synthetic transactions in the published CSV format (one file, or one per month)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

NAME = "generate"
HELP = (
    "Write synthetic card transactions (Kaggle fraud CSV format, realistic fraud episodes), "
    "deterministic by --seed, to one file or one file per month."
)

PROGRESS_EVERY = 1_000_000


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=_positive_int, default=100_000, help="transactions to write, exactly")
    parser.add_argument("--cards", type=_positive_int, default=1000, help="cards (cardholders)")
    parser.add_argument("--start", type=_iso_date, default=date(2019, 1, 1), help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=_iso_date, default=date(2020, 12, 31), help="last day (inclusive), YYYY-MM-DD")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (same args: same bytes)")
    parser.add_argument(
        "--fraud-rate", type=_rate, default=0.005, help="share of fraudulent transactions (default 0.005)"
    )
    parser.add_argument("--no-index", action="store_true", help="omit the leading unnamed index column")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", default="data/transactions.csv", help="output CSV path (default %(default)s)")
    target.add_argument(
        "--split-monthly",
        metavar="DIR",
        default=None,
        help="instead of one file, write DIR/transactions_YYYY-MM.csv for every month of the range",
    )


def run(args: argparse.Namespace) -> int:
    from tools import generator

    if args.end < args.start:
        print(f"{NAME}: error: --end {args.end} is before --start {args.start}", file=sys.stderr)
        return 2

    next_report = PROGRESS_EVERY
    started = time.monotonic()

    def progress(rows: int, frauds: int) -> None:
        nonlocal next_report
        if rows >= next_report and rows < args.rows:
            elapsed = time.monotonic() - started
            print(
                f"{NAME}: {rows:,}/{args.rows:,} rows ({rows / args.rows:.0%}), {frauds:,} frauds, "
                f"{elapsed:.1f}s, {rows / max(elapsed, 1e-9):,.0f} rows/s",
                file=sys.stderr,
                flush=True,
            )
            next_report = (rows // PROGRESS_EVERY + 1) * PROGRESS_EVERY

    common = dict(
        rows=args.rows,
        cards=args.cards,
        start=args.start,
        end=args.end,
        seed=args.seed,
        fraud_rate=args.fraud_rate,
        with_index=not args.no_index,
        progress=progress,
    )
    if args.split_monthly:
        summary = generator.generate_csv_monthly(args.split_monthly, **common)
        where = f"{summary.path} ({len(summary.files)} monthly files)"
    else:
        summary = generator.generate_csv(args.out, **common)
        where = summary.path
    print(
        f"{NAME}: wrote {summary.rows:,} rows, {summary.frauds:,} frauds ({summary.fraud_rate:.3%}) "
        f"in {summary.episodes:,} episodes on {summary.fraud_cards:,} cards; {summary.cards:,} cards, "
        f"{summary.start}..{summary.end} -> {where} in {summary.seconds:.1f}s ({summary.rows_per_s:,.0f} rows/s)"
    )
    return 0
