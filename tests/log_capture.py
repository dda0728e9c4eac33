"""Every log line the process writes, as the service's JSON formatter writes it (redaction included)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fraud_detection.logs import JsonFormatter


@contextmanager
def json_log_lines(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """Attach a JSON-formatting handler to the root logger at ``level``; yields the stream it writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(level)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
