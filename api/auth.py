"""API keys: configured as salted SHA-256 hashes, compared in constant time, rate-limited per key.

A key entry is ``<key_id>:<salt_hex>:<sha256(salt_bytes + key) hex>``; ``FRAUD_API_KEYS`` holds a
comma-separated list (from the environment or a secret). API keys are long random tokens, so a fast
salted hash is enough (no password stretching on the request path). ``new_api_key`` makes a key and
its entry.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from dataclasses import dataclass

HEADER = "X-API-Key"


class KeyConfigError(ValueError):
    """FRAUD_API_KEYS holds an entry that is not '<key_id>:<salt_hex>:<sha256 hex>'."""


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    salt: bytes
    digest: bytes


def hash_key(key: str, salt: bytes) -> bytes:
    return hashlib.sha256(salt + key.encode("utf-8", "surrogatepass")).digest()


def new_api_key(key_id: str = "default") -> tuple[str, str]:
    """A fresh random key and the entry to configure for it."""
    if not key_id or ":" in key_id or "," in key_id:
        raise KeyConfigError("key_id must be non-empty without ':' or ','")
    key = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    return key, f"{key_id}:{salt.hex()}:{hash_key(key, salt).hex()}"


def parse_entries(text: str | None) -> list[KeyEntry]:
    entries = []
    for raw in (text or "").split(","):
        raw = raw.strip()
        if not raw:
            continue
        parts = raw.split(":")
        if len(parts) != 3:
            raise KeyConfigError("an API key entry must be '<key_id>:<salt_hex>:<sha256 hex>'")
        key_id, salt_hex, digest_hex = parts
        try:
            salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
        except ValueError as exc:
            raise KeyConfigError(f"API key entry {key_id!r}: salt and hash must be hex") from exc
        if len(digest) != 32 or not salt:
            raise KeyConfigError(f"API key entry {key_id!r}: hash must be 64 hex digits, salt non-empty")
        entries.append(KeyEntry(key_id, salt, digest))
    return entries


class KeyVerifier:
    def __init__(self, entries: list[KeyEntry]) -> None:
        self.entries = entries

    def verify(self, presented: str | None) -> str | None:
        """The key id of a valid key, else None. Every entry is checked, each in constant time."""
        if not presented or len(presented) > 256:
            return None
        found = None
        for e in self.entries:
            if hmac.compare_digest(hash_key(presented, e.salt), e.digest):
                found = e.key_id
        return found


class RateLimiter:
    """Token bucket per key (an API key id, or a client address): ``rate`` tokens per second sustained,
    ``burst`` at once. A call needs one token to start (``acquire``); a batch is then charged the rest of
    its size (``charge``), which may run the bucket into debt: the key waits until it is paid back, so a
    batch of n costs what n single calls cost. At most ``max_keys`` buckets are kept (the least recently
    used go first), so a flood of distinct client addresses cannot grow memory without bound."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _take(self, key: str, cost: float, need: float) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))  # re-inserted last: most recent
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= need
            if allowed:
                tokens -= cost
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:
                del self._buckets[next(iter(self._buckets))]
            return 0.0 if allowed else (need - tokens) / self.rate

    def acquire(self, key: str) -> float:
        """0 when allowed (one token taken); otherwise the seconds until a call would be allowed."""
        return self._take(key, 1.0, 1.0)

    def charge(self, key: str, tokens: float) -> None:
        """Take ``tokens`` more from an admitted call (the rest of a batch), into debt if need be."""
        if tokens > 0:
            self._take(key, tokens, float("-inf"))


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
