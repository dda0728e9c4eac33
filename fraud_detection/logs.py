"""Structured JSON logs, one event per line, with an optional request / correlation id.

Every line passes through ``redact_card_numbers`` last, so a card number can not reach the logs even by
way of an exception message or a library's text (pydantic quotes the invalid input it rejects): runs of
as many digits as the data contract allows a card number, plain or grouped by spaces or dashes, and runs
of 11 or more digits inside a word (``4616225647185595x``). Hexadecimal tokens (the request and prediction
ids), model versions and run ids (``20261121T143048063Z-7a52307a``) are left whole.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

from fraud_detection.contract import CARD_DIGITS

correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

# a run of digits, or groups of 3 or more digits joined by single spaces or dashes (4-4-4-4, 4-6-5), not
# part of a word or a decimal: dates (2-digit groups) and ISO times stay as they are
_DIGIT_GROUPS = re.compile(r"(?<![\w.])\d{3,}(?:[ -]\d{3,})*(?!\w|\.\d)")
_FEWEST = CARD_DIGITS[0]
# inside a word (``4616225647185595x``), a run as long as the published data's shortest card number: model
# versions and run ids (``20261121T143048063Z``: 8 and 9 digits) stay whole
_FEWEST_IN_WORD = 11
_RUN_IN_WORD = re.compile(rf"\d{{{_FEWEST_IN_WORD},}}")
_WORD_WITH_RUN = re.compile(rf"\w*\d{{{_FEWEST_IN_WORD},}}\w*")
# hexadecimal with a letter, after an optional ``name_`` prefix: our request and prediction ids, ETags,
# Glue job runs (``jr_<64 hex>``)
_ID = re.compile(r"(?:[A-Za-z]+_)?(?=[0-9]*[a-fA-F])[0-9a-fA-F]+")
_RUN = re.compile(rf"\d{{{_FEWEST},}}")
REDACTED = "[card number redacted]"


def _redact(match: re.Match[str]) -> str:
    text = match.group()  # longer than a card number too: two card numbers side by side are one match
    start, line = match.start(), match.string
    # after a dash that follows a word, the run is that word's suffix (``...Z-12345678``, a version's hash):
    # held to the in-word length
    suffix = start >= 2 and line[start - 1] == "-" and (line[start - 2].isalnum() or line[start - 2] == "_")
    return REDACTED if sum(ch.isdigit() for ch in text) >= (_FEWEST_IN_WORD if suffix else _FEWEST) else text


def _redact_in_word(match: re.Match[str]) -> str:
    word = match.group()
    return word if _ID.fullmatch(word) else _RUN_IN_WORD.sub(REDACTED, word)


def redact_card_numbers(text: str) -> str:
    """Every run of at least as many digits as the shortest card number (a bare 10-digit epoch time too)
    -> ``REDACTED``."""
    return _WORD_WITH_RUN.sub(_redact_in_word, _DIGIT_GROUPS.sub(_redact, text))


# Stricter, for text that holds no ids to keep (reports, stored file names): a card-length run counts inside
# a hex word too (a card number hides in a 32-hex id); 4-4-4-4 / 4-6-5 groups count, dates do not.
_GROUPED_RUN = re.compile(r"\d{3,}(?:[ -]\d{3,})*")


def redact_digit_runs(text: str, fewest: int = _FEWEST) -> str:
    """``redact_card_numbers``, then every run of ``fewest`` digits or more, inside any word, -> ``REDACTED``."""

    def sub(m: re.Match[str]) -> str:
        return REDACTED if sum(ch.isdigit() for ch in m.group()) >= fewest else m.group()

    return _GROUPED_RUN.sub(sub, redact_card_numbers(text))


def has_card_like_digits(text: str) -> bool:
    """Whether ``text`` holds as many digits in a row as a card number, spaces and dashes ignored: such
    text from outside (a caller's request id) is not written to a log."""
    return _RUN.search(text.replace(" ", "").replace("-", "")) is not None


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        cid = correlation_id.get()
        if cid:
            event["correlation_id"] = cid
        for k, v in vars(record).items():
            if k not in _RESERVED and not k.startswith("_"):
                event[k] = v
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return redact_card_numbers(json.dumps(event, default=str))


class TextFormatter(logging.Formatter):
    """One readable line for a person at a terminal: time, level, logger, message, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields = " ".join(
            f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")
        )
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}" + (f"  {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact_card_numbers(line)


def log_formatter(fmt: str) -> logging.Formatter:
    """``json`` or ``text``; ``auto``: text when stdout is a terminal (a person reads it), JSON otherwise."""
    if fmt == "auto":
        fmt = "text" if sys.stdout.isatty() else "json"
    return TextFormatter() if fmt == "text" else JsonFormatter()


def configure_logging(level: str = "INFO", fmt: str | None = None) -> None:
    """Log to stderr at ``level``, in ``fmt`` (default: the settings' ``log_format``, FRAUD_LOG_FORMAT)."""
    if fmt is None:
        from fraud_detection.settings import get_settings

        fmt = get_settings().log_format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("py4j", "great_expectations", "botocore", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
