"""The DynamoDB card history under a batch: one call at a time against several in flight, with network latency.

A batch of N new cards costs N Queries to read their history and N / 25 BatchWriteItems to record it. On
AWS each call is a network round trip (a few milliseconds from Fargate); here the emulator (moto server on
127.0.0.1) answers in about a millisecond of its own CPU, so the run puts a TCP proxy in front of it that
holds every request for ``--delay-ms`` before passing it on: an emulated round trip, not AWS's. Both
settings (``concurrency`` 1 and ``--concurrency``) run in the same run, through the same proxy, on the
same table, alternately; the section ``## Card history on DynamoDB`` of ``docs/benchmarks.md`` gets the
figures (``--write-docs``).

    .venv/bin/python bench/dynamo_history.py --cards 300 --delay-ms 4 --write-docs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import select
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.docs_section import report  # noqa: E402
from fraud_detection.card_history import DynamoCardHistory, create_dynamo_table  # noqa: E402

SECTION = "## Card history on DynamoDB"
TABLE = "bench-card-history"


def start_emulator(timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """The project's emulator (``python -m tools.emulator.server``) in its own process, on a free port: in
    this one it would share the GIL with the client threads it is measured against. Returns (process, URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.emulator.server", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()  # "emulator listening on http://127.0.0.1:PORT (...)"
            if not line:
                break
            if "listening on " in line:
                return proc, line.split("listening on ", 1)[1].split()[0]
    proc.kill()
    raise TimeoutError("the emulator did not start")


class DelayProxy:
    """127.0.0.1 TCP proxy: every chunk from a client waits ``delay_s`` before it goes upstream."""

    def __init__(self, upstream_port: int, delay_s: float) -> None:
        self.upstream_port, self.delay_s = upstream_port, delay_s
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _pipe(self, reader, writer, delay_s: float) -> None:
        try:
            while chunk := await reader.read(65536):
                if delay_s:
                    await asyncio.sleep(delay_s)
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _client(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pipe(reader, up_writer, self.delay_s), self._pipe(up_reader, writer, 0.0))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def client(endpoint: str, pool: int):
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - the emulator's dummy credentials
        config=Config(max_pool_connections=pool),
    )


def run(args: argparse.Namespace) -> dict:
    moto, endpoint = start_emulator()
    proxy = None
    try:
        port = int(endpoint.rsplit(":", 1)[1])
        proxy = DelayProxy(port, args.delay_ms / 1e3)
        direct = client(endpoint, 10)
        slow = client(f"http://127.0.0.1:{proxy.port}", args.concurrency)
        since, until = 1_600_000_000, 1_600_000_000 + 40 * 86_400
        # (label, client, calls in flight): the emulator without the delay first, the floor of the rest
        settings = [
            ("no delay", direct, 1),
            (f"{args.delay_ms:g} ms", slow, 1),
            (f"{args.delay_ms:g} ms", slow, args.concurrency),
        ]
        res: dict = {
            "settings": [{"label": s[0], "concurrency": s[2], "read_ms": [], "write_ms": []} for s in settings]
        }
        for rep in range(args.repeats):
            for n, (label, dynamo, concurrency) in enumerate(settings):
                # a new table each time: the emulator's Query takes longer the more items its table holds
                table = f"{TABLE}-{rep}-{n}"
                create_dynamo_table(direct, table)
                store = DynamoCardHistory(table, client=dynamo, concurrency=concurrency)
                keys = [f"{rep:08x}{n:04x}{i:052x}" for i in range(args.cards)]  # new cards each time
                items = [
                    (k, f"t{i}-{j}", (since + 86_400 * j, 12.5 + j, j % 14))
                    for i, k in enumerate(keys)
                    for j in range(3)
                ]
                t = time.perf_counter()
                store.append_many(items)
                write_ms = (time.perf_counter() - t) * 1e3
                t = time.perf_counter()
                got = store.read_many(keys, since, until)
                read_ms = (time.perf_counter() - t) * 1e3
                assert sum(len(v) for v in got.values()) == len(items), "every written item must be read back"
                res["settings"][n]["read_ms"].append(read_ms)
                res["settings"][n]["write_ms"].append(write_ms)
                store.close()
                direct.delete_table(TableName=table)
                print(f"{label:>9}, {concurrency:>2} in flight: write {write_ms:8.1f} ms, read {read_ms:8.1f} ms")
        return res
    finally:
        if proxy is not None:
            proxy.stop()
        moto.terminate()
        moto.wait(10)


def render(res: dict, args: argparse.Namespace) -> str:
    rows = []
    for r in res["settings"]:
        w, rd = statistics.median(r["write_ms"]), statistics.median(r["read_ms"])
        rows.append(f"| {r['label']} | {r['concurrency']} | {w:,.0f} | {rd:,.0f} | {rd / args.cards:.1f} |")
    floor, one, many = (statistics.median(r["read_ms"]) for r in res["settings"])
    w_one, w_many = (statistics.median(r["write_ms"]) for r in res["settings"][1:])
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/dynamo_history.py` on this machine "
            f"({os.cpu_count()} cores, Python {platform.python_version()}): a batch of {args.cards} new cards, "
            f"3 transactions each, written (`append_many`: {-(-args.cards * 3 // 25)} BatchWriteItems) and read "
            f"back (`read_many`: {args.cards} Queries) by `DynamoCardHistory` against moto server (its own "
            f"process, a new table each time), directly and behind a proxy that holds every request "
            f"{args.delay_ms:g} ms (an emulated network round trip: AWS is not reachable from here). Median of "
            f"{args.repeats} alternating runs.",
            "",
            "| added delay | calls in flight | write ms | read ms | read ms per card |",
            "| --- | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            f"- With {args.concurrency} calls in flight behind the same delay, the writes take {w_many / w_one:.0%} "
            f"and the reads {many / one:.0%} of the one-at-a-time time.",
            f"- Without the delay, one at a time, a Query costs {floor / args.cards:.1f} ms here: botocore's work "
            "in this process (signing, serialising, parsing) and the emulator's in its own, both CPU on the "
            "same 2 cores. That CPU is a floor no number of calls in flight goes below on this machine; on AWS "
            "the emulator's share is DynamoDB's, off the machine, and the round trip is what overlaps.",
            "",
            f"Reproduce: `.venv/bin/python bench/dynamo_history.py --cards {args.cards} --delay-ms "
            f"{args.delay_ms:g} --write-docs`.",
            "",
        ]
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cards", type=int, default=300, help="cards in the batch (bounded: at most 2,000)")
    ap.add_argument("--delay-ms", type=float, default=4.0, help="emulated round trip added to every request")
    ap.add_argument("--concurrency", type=int, default=16, help="calls in flight of the concurrent setting")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write-docs", action="store_true", help=f"replace the '{SECTION}' section of docs/benchmarks.md")
    args = ap.parse_args()
    if not 1 <= args.cards <= 2000 or not 1 <= args.repeats <= 10:
        ap.error("--cards must be 1..2000 and --repeats 1..10 (the run is bounded)")
    res = run(args)
    section = render(res, args)
    report(SECTION, section, write_docs=args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
