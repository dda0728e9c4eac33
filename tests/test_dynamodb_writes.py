"""BatchWriteItem's retry of unprocessed items (the emulator never leaves any: a scripted client plays
DynamoDB's throttling answer here; the real calls are tested against moto server with the stores)."""

from __future__ import annotations

import pytest

from fraud_detection import dynamodb_writes
from fraud_detection.dynamodb_writes import MAX_ITEMS, chunks, write_all, write_chunk


class Throttling:
    """Answers each call with the first ``left`` items unprocessed, ``left`` shrinking by ``step`` a call."""

    def __init__(self, left: int, step: int) -> None:
        self.left, self.step, self.calls = left, step, []

    def batch_write_item(self, RequestItems):  # noqa: N803 - boto3's parameter name
        ((table, requests),) = RequestItems.items()
        self.calls.append(len(requests))
        unprocessed = requests[: self.left]
        self.left = max(0, self.left - self.step)
        return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}}


def test_unprocessed_items_are_sent_again_until_none_is_left(monkeypatch):
    monkeypatch.setattr(dynamodb_writes.time, "sleep", lambda s: None)
    client = Throttling(left=10, step=4)
    write_chunk(client, "t", [{"PutRequest": {"Item": {"k": {"S": str(i)}}}} for i in range(20)], "test")
    assert client.calls == [20, 10, 6, 2]


def test_items_still_unprocessed_after_every_attempt_raise(monkeypatch):
    monkeypatch.setattr(dynamodb_writes.time, "sleep", lambda s: None)
    client = Throttling(left=5, step=0)
    with pytest.raises(RuntimeError, match="5 test writes unprocessed"):
        write_chunk(client, "t", [{"PutRequest": {}}] * 8, "test")
    assert len(client.calls) == dynamodb_writes.ATTEMPTS


def test_requests_go_in_chunks_of_at_most_25():
    assert [len(c) for c in chunks(list(range(60)))] == [MAX_ITEMS, MAX_ITEMS, 10]
    client = Throttling(left=0, step=0)
    write_all(client, "t", [{"PutRequest": {}}] * 51, "test")
    assert client.calls == [25, 25, 1]
