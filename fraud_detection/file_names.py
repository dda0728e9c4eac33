"""Names of the files the system keeps: what a dropped file may be called in ``raw/``, and a name in
``quarantine/`` that no other file has taken.

A dropped file's name is the sender's choice. Whatever it is, the file must end somewhere under a name
this store can hold and Spark can read, and a second file of the same name must not replace the first:

* ``unsafe_name`` says why a name cannot be taken as it is (a backslash, a control character, a ``.`` or
  ``..`` or empty path segment, a segment that starts with a dot);
* ``stored_name`` turns any name into one that can be stored: those characters replaced, each segment cut
  to fit the file-system limit with room for suffixes, card-number-like digit runs replaced (a file name
  lands in run records, manifests and logs);
* ``free_key`` picks the first key not taken under a prefix: the name itself, then ``<stem>.<tag>.<ext>``,
  then with a counter.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MAX_SEGMENT_BYTES = 180  # NAME_MAX is 255 bytes: room for ".<tag>-<n>" and ".reason.json"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CARD_IN_NAME = "card-number-redacted"
# A card number in a name: a run of as many digits as the published data's shortest card (11), or digits in
# the groups cards are printed in (4-4-4-4 with up to 3 more, 4-6-5), joined by a space, dash, dot or
# underscore. Date stamps and ranges (20190101, 20190101-20191231, 2019-01-01) are neither.
_SEP = r"[ ._-]"
_CARD_IN_NAME = re.compile(
    rf"\d{{11,}}|(?<!\d)(?:\d{{4}}(?:{_SEP}\d{{4}}){{3}}(?:{_SEP}?\d{{1,3}})?|\d{{4}}{_SEP}\d{{6}}{_SEP}\d{{5}})(?!\d)"
)


def unsafe_name(rel: str) -> str | None:
    """Why ``rel`` (a path under ``landing/``) is not taken for training, or None."""
    if "\\" in rel:
        return "file name has a backslash (a Windows path?): rename it and drop it again"
    if _CONTROL.search(rel):
        return "file name has a control character"
    for seg in rel.split("/"):
        if seg in ("", ".", ".."):
            return f"file name has a {seg or 'empty'!r} path segment"
        if seg.startswith("."):
            return "hidden file (its name starts with a dot)"
    return None


def _cut(seg: str, limit: int = MAX_SEGMENT_BYTES) -> str:
    if len(seg.encode()) <= limit:
        return seg
    stem, dot, ext = seg.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = seg, ""
    room = limit - (len(ext.encode()) + 1 if ext else 0)
    cut = stem.encode()[:room].decode("utf-8", "ignore")
    return f"{cut}.{ext}" if ext else cut


def stored_name(rel: str) -> str:
    """A storable form of ``rel``: the same name when it is already one (``unsafe_name`` None, short enough,
    no card-like digits, no ``:``, which Hadoop cannot read in a file name: "Relative path in absolute URI")."""
    rel = _CONTROL.sub("_", rel.replace("\\", "_").replace(":", "_"))
    out = []
    for seg in rel.split("/"):
        if seg in ("", ".", ".."):
            seg = seg.replace(".", "_") or "_"
        elif seg.startswith("."):
            seg = "_" + seg  # visible: listings skip dot names
        seg = _CARD_IN_NAME.sub(CARD_IN_NAME, seg)
        out.append(_cut(seg))
    return "/".join(out)


def with_tag(rel: str, tag: str) -> str:
    head, slash, name = rel.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    tagged = f"{stem}.{tag}.{ext}" if dot and stem else f"{name}.{tag}"
    return f"{head}{slash}{tagged}"


def free_key(prefix: str, rel: str, tag: str, taken: Callable[[str], bool], tries: int = 1000) -> str:
    """``prefix + rel`` if not ``taken``, else the same with ``.<tag>`` (then ``.<tag>-<n>``) before the
    extension. ``tag`` names the object (version id / ETag), so the suffix tells copies apart."""
    tag = re.sub(r"[^A-Za-z0-9]", "", tag)[:16] or "copy"
    candidates = [rel, with_tag(rel, tag)] + [with_tag(rel, f"{tag}-{n}") for n in range(2, tries)]
    for cand in candidates:
        if not taken(prefix + cand):
            return prefix + cand
    raise RuntimeError(f"no free name for {rel!r} under {prefix} after {tries} tries")
