"""Each benchmark owns one ``## `` section of ``docs/benchmarks.md``; this replaces it and leaves the rest."""

from __future__ import annotations

import os
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(heading: str, text: str, path: Path = DOCS) -> None:
    """Replace the section under ``heading`` (from it to the next ``## `` heading) with ``text``, which
    starts with that heading, or append it; written to a temporary file first, then moved into place."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.M | re.S)
    block = text.rstrip("\n") + "\n"
    found = pattern.search(current)
    if found:
        following = found.end() < len(current)
        new = pattern.sub(lambda _: block + ("\n" if following else ""), current, count=1)
    else:
        new = current.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def report(heading: str, text: str, *, write_docs: bool) -> None:
    """Print a benchmark's section; with ``write_docs``, also put it in ``docs/benchmarks.md``."""
    print(text)
    if write_docs:
        write_section(heading, text)
