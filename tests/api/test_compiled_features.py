"""The compiled per-transaction feature function: generated from ``features.FEATURES`` (each shared
sub-expression once), equal to the row engine bit for bit, and absent (None) for a feature it cannot
trace, so the caller falls back to evaluating the expressions."""

from __future__ import annotations

import math

from api_support import to_request

from api import fast_features
from api.compiled_features import compile_features, generated_source
from api.fast_features import ListHistory
from api.schemas import Transaction
from fraud_detection import features


def test_the_served_features_are_the_compiled_function():
    assert fast_features._COMPILED is not None
    src = generated_source()
    assert src.count("H('sum', 2592000, False)") == 1  # shared by five features, computed once
    assert src.count("_math.") == 11  # 4 radians, 2 sin, 2 cos, 1 asin, 2 sqrt (distance, spread): no repeats


def test_compiled_equals_the_row_engine_bit_for_bit(rows):
    subset = rows[:1500]
    recs: dict[str, list] = {}
    for r in subset:
        recs.setdefault(r["cc_num"], []).append(features.history_record(r))
    compiled = compile_features()
    for r in subset[::2]:
        want = features.transaction_features(r, features.History.from_records(recs[r["cc_num"]]))
        txn = Transaction.model_validate(to_request(r)).__dict__
        ops = fast_features.FastRowOps(txn, ListHistory(recs[r["cc_num"]]))
        assert compiled(ops._v, ops._hist) == want


def test_untraceable_features_are_not_compiled_and_constants_keep_their_sign():
    branchy = features.Feature("branchy", lambda o: 1.0 if o.col("amt") > 10 else 0.0, "a Python if")
    assert compile_features([branchy]) is None
    signed = features.Feature("signed", lambda o: (-2.0) ** o.col("hour"), "a negative base")
    fn = compile_features([signed])
    assert fn({"hour": 2.0}, None) == [4.0] and math.isclose(fn({"hour": 3.0}, None)[0], -8.0)
