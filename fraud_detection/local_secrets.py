"""Keys a local store keeps for itself (embedded mode needs no setup): created once, random, under
``<store>/secrets/`` with owner-only permissions. On AWS the keys come from Secrets Manager instead."""

from __future__ import annotations

import secrets

from fraud_detection.storage import LocalStore


def local_secret(store: LocalStore, key: str) -> bytes:
    """The secret stored at ``key`` (e.g. ``secrets/card_hash_key``), created on first use."""
    path = store.path(key)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        store.write_bytes(key, secrets.token_hex(32).encode())
        path.chmod(0o600)
    return store.read_bytes(key).strip()
