"""No card number reaches a log line, whatever carries it there (an exception, a library's message)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from fraud_detection import artifacts, runs
from fraud_detection.logs import REDACTED, JsonFormatter, has_card_like_digits, redact_card_numbers


@pytest.mark.parametrize(
    "text",
    [
        "card 4616225647185595 declined",
        "4616-2256-4718-5595",
        "4616 2256 4718 5595",
        "3782 822463 10005",  # 4-6-5 grouping
        "input_value='60416207185'",  # 11 digits: the published data's shortest
        "12345678",  # the contract's shortest card number
        "4616225647185595.",
        "cards 4616225647185595 4616225647185596",  # side by side: one long run
        "input_value='4616225647185595x'",  # inside a word
        "card_4616225647185595",
        "order-4616225647185595",
        "x-60416207185",
    ],
)
def test_card_numbers_are_redacted(text):
    out = redact_card_numbers(text)
    assert REDACTED in out
    assert sum(ch.isdigit() for ch in out) < 8


@pytest.mark.parametrize(
    "text",
    [
        "request 39df13ec1700b461000000000000",  # hex ids stay whole
        "2019-01-12 20:29:13",
        "2026-11-21T20:46:16.097+00:00",
        '"load_s": 1.0123456789',
        "zip 43223, city_pop 1234567",
        "model_version 20261121T143048063Z-7a52307a, run_id 20261121T222639Z-abe7fd",
        "client id 550e8400-e29b-41d4-a716-44665544a000",
        "glue run jr_0f3a91234567890123b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80912",
    ],
)
def test_other_numbers_are_kept(text):
    assert redact_card_numbers(text) == text


def test_the_ids_we_make_are_kept():
    now = datetime(2026, 11, 21, 14, 30, 48, 63_000, tzinfo=UTC)
    # a version whose hash part happens to be all digits (1 in 43 models)
    blob = next(b for b in (str(i).encode() for i in range(10_000)) if artifacts.sha256_hex(b)[:8].isdigit())
    for made in (artifacts.new_version(b"model", now), artifacts.new_version(blob, now), runs.new_run_id(now)):
        assert redact_card_numbers(f"version {made}.") == f"version {made}."


def test_a_log_line_with_a_card_number_in_message_extra_and_traceback_has_none():
    class Txn(BaseModel):
        amt: float

    try:
        Txn.model_validate({"amt": "4616225647185595x"})
    except ValidationError as exc:
        record = logging.LogRecord("api", logging.ERROR, __file__, 1, "failed for %s", ("4616225647185595",), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
        record.card = "4616 2256 4718 5595"
        record.request_id = "39df13ec1700b461000000000000"
        line = JsonFormatter().format(record)
    event = json.loads(line)
    assert "4616225647185595" not in line and "4616 2256" not in line
    assert event["msg"] == f"failed for {REDACTED}" and event["card"] == REDACTED
    assert event["request_id"] == "39df13ec1700b461000000000000"
    assert "ValidationError" in event["exc"]


def test_text_from_outside_with_card_like_digits_is_recognised():
    assert has_card_like_digits("4616-2256-4718-5595") and has_card_like_digits("id4616225647185595")
    assert not has_card_like_digits("abc-123") and not has_card_like_digits("parity-test-1")
