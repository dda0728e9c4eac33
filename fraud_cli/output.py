"""Where a command's output goes: data on stdout, people's text on stderr.

With ``--json`` stdout carries exactly one JSON document, so ``fraud runs --json | jq`` works; the
one-line summary every command ends with, progress and hints always go to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(doc: Any) -> None:
    """The command's one JSON document, on stdout."""
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    sys.stdout.flush()


def summary(line: str) -> None:
    """A line for the person at the terminal (the closing summary, a hint), on stderr."""
    print(line, file=sys.stderr, flush=True)
