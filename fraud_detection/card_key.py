"""Keyed hash of the card number: the only form in which a card is stored, logged or looked up.

``card_key = sha256(key || ":" || cc_num)`` as hex, computed identically by Spark (``sha2``) and Python
(``hashlib``) so training tables, the online history store and the prediction log agree. Without the
key a card number cannot be recovered by enumerating the (small) card-number space.
"""

from __future__ import annotations

import hashlib
import re

from fraud_detection.layout import SECRETS
from fraud_detection.local_secrets import local_secret
from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore, Store

KEY_FILE = f"{SECRETS}/card_hash_key"


class MissingKeyError(RuntimeError):
    pass


def card_key(cc_num: str | int, key: str) -> str:
    return hashlib.sha256(f"{key}:{str(cc_num).strip()}".encode()).hexdigest()


# A transaction id holding a run of digits as long as the published data's shortest card number (a 32-hex
# id can: 0-9 are hex digits; about one random id in twenty does, docs/benchmarks.md, "Figures behind the
# code") is stored as a keyed hash: a card number hidden in it never reaches the card history, the
# prediction log or the training snapshot. Others stay as sent.
TRANS_ID_DIGITS = 11
_DIGIT_RUN = re.compile(f"[0-9]{{{TRANS_ID_DIGITS}}}")


def stored_trans_id(trans_num: str, key: str) -> str:
    """The id a transaction is stored under: ``trans_num`` itself, or ``h`` + 31 hex of a keyed sha256
    (32 characters, like the ids it replaces; ``h`` is not hex, so it never collides with a sent id)."""
    if _DIGIT_RUN.search(trans_num) is None:
        return trans_num
    return "h" + hashlib.sha256(f"{key}:trans_num:{trans_num}".encode()).hexdigest()[:31]


def spark_stored_trans_id(col, key: str):  # pyspark Column -> Column, equal to ``stored_trans_id``
    from pyspark.sql import functions as F

    hashed = F.concat(F.lit("h"), F.substring(F.sha2(F.concat(F.lit(f"{key}:trans_num:"), col), 256), 1, 31))
    return F.when(col.rlike(_DIGIT_RUN.pattern), hashed).otherwise(col)


def spark_card_key(col, key: str):  # pyspark Column -> Column
    from pyspark.sql import functions as F

    return F.sha2(F.concat(F.lit(f"{key}:"), F.trim(col)), 256)


def resolve_key(settings: Settings, store: Store) -> str:
    """The configured key; on a local store, a random one created once under <store>/secrets/."""
    if settings.card_hash_key is not None:
        return settings.card_hash_key.get_secret_value()
    if isinstance(store, LocalStore):
        return local_secret(store, KEY_FILE).decode()
    raise MissingKeyError("FRAUD_CARD_HASH_KEY must be set for a non-local store (inject it from Secrets Manager)")
