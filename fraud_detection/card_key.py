"""Keyed hash of the card number: the only form in which a card is stored, logged or looked up.

``card_key = sha256(key || ":" || cc_num)`` as hex, computed identically by Spark (``sha2``) and Python
(``hashlib``) so training tables, the online history store and the prediction log agree. Without the
key a card number cannot be recovered by enumerating the (small) card-number space.
"""

from __future__ import annotations

import hashlib
import secrets

from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore, Store

KEY_FILE = "secrets/card_hash_key"


class MissingKeyError(RuntimeError):
    pass


def card_key(cc_num: str | int, key: str) -> str:
    return hashlib.sha256(f"{key}:{str(cc_num).strip()}".encode()).hexdigest()


def spark_card_key(col, key: str):  # pyspark Column -> Column
    from pyspark.sql import functions as F

    return F.sha2(F.concat(F.lit(f"{key}:"), F.trim(col)), 256)


def resolve_key(settings: Settings, store: Store) -> str:
    """The configured key; on a local store, a random one created once under <store>/secrets/."""
    if settings.card_hash_key is not None:
        return settings.card_hash_key.get_secret_value()
    if isinstance(store, LocalStore):
        path = store.path(KEY_FILE)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            store.write_bytes(KEY_FILE, secrets.token_hex(32).encode())
            path.chmod(0o600)
        return store.read_bytes(KEY_FILE).decode().strip()
    raise MissingKeyError("FRAUD_CARD_HASH_KEY must be set for a non-local store (inject it from Secrets Manager)")
