"""DynamoDB BatchWriteItem: 25 items per call, the items DynamoDB leaves unprocessed retried with backoff."""

from __future__ import annotations

import time
from collections.abc import Iterator

MAX_ITEMS = 25  # BatchWriteItem's limit per call
ATTEMPTS = 10


def chunks(requests: list[dict]) -> Iterator[list[dict]]:
    """Write requests in groups of at most ``MAX_ITEMS``."""
    for i in range(0, len(requests), MAX_ITEMS):
        yield requests[i : i + MAX_ITEMS]


def write_chunk(client, table: str, requests: list[dict], what: str) -> None:
    """One BatchWriteItem of at most ``MAX_ITEMS`` requests; unprocessed ones are sent again after 50 ms,
    100 ms, ... (at most 2 s) until none is left; ``RuntimeError`` naming ``what`` after ``ATTEMPTS`` calls."""
    pending = {table: requests}
    for attempt in range(ATTEMPTS):
        pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
        time.sleep(min(0.05 * 2**attempt, 2.0))
    raise RuntimeError(f"DynamoDB left {len(pending[table])} {what} writes unprocessed")


def write_all(client, table: str, requests: list[dict], what: str) -> None:
    """Every request, one chunk after another."""
    for chunk in chunks(requests):
        write_chunk(client, table, chunk, what)
