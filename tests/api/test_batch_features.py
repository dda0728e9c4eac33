"""The batch feature engine (``api.batch_features``) against the row engine: the same feature values for
every transaction of a batch, bit for bit (a last-bit difference can flip a split whose threshold is a
value seen in training), with in-batch and stored history counted once each."""

from __future__ import annotations

import numpy as np
import pytest
from api_support import to_request
from factories import row_features

from api.batch_features import BatchHistory, base_columns, batch_features, pairwise_sums
from api.schemas import Transaction
from fraud_detection import features


def _txns(rows):
    return [Transaction.model_validate(to_request(r)).__dict__ for r in rows]


def _batch(rows, stored_rows=()):
    """Features of ``rows`` as one batch whose cards also have ``stored_rows`` in the history store."""
    txns = _txns(rows)
    stored: dict[str, dict] = {}
    for r in stored_rows:  # what the store's read_many returns for the batch's cards
        rec = features.history_record(r)
        stored.setdefault(str(r["cc_num"]), {})[(rec[0], r["trans_num"])] = rec
    cols = base_columns(txns)
    history = BatchHistory.merge(
        [str(r["cc_num"]) for r in rows],
        [r["trans_num"] for r in rows],
        [features.history_record(r) for r in rows],
        stored,
        cols["category_idx"].astype(np.int64),
    )
    return batch_features(cols, history)


def _assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    bad = [(i, features.FEATURE_NAMES[j], got[i, j], want[i, j]) for i, j in zip(*np.nonzero(got != want), strict=True)]
    assert not bad, bad[:5]


def test_base_columns_equal_the_row_engine_primitives(rows):
    txns = _txns(rows[:500])
    cols = base_columns(txns)
    for i, t in enumerate(txns):
        ops = features.RowOps(t, features.History.empty())
        assert {k: float(v[i]) for k, v in cols.items()} == ops._v


def test_one_batch_equals_the_row_engine_on_true_history(rows):
    subset = rows[:3000]
    want = row_features(subset)
    _assert_close(_batch(subset), want)
    assert (want[:, features.FEATURE_NAMES.index("n_30d")] > 0).mean() > 0.5  # history features are exercised


def test_a_later_batch_over_stored_history_and_a_replay(rows):
    subset = rows[:3000]
    want = row_features(subset)
    _assert_close(_batch(subset[2000:], stored_rows=subset[:2000]), want[2000:])
    # sent again after being stored: every transaction counted once, the same features
    _assert_close(_batch(subset[2000:], stored_rows=subset), want[2000:])


def test_batch_in_any_order_gives_each_transaction_its_features(rows):
    subset = rows[:1200]
    order = np.random.default_rng(3).permutation(len(subset))
    got = _batch([subset[i] for i in order])
    _assert_close(got, row_features(subset)[order])


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 300, 1000])
def test_pairwise_sums_equal_numpy_sum_bit_for_bit(length):
    rng = np.random.default_rng(length)
    values = np.append(rng.lognormal(3, 2, size=length + 40), 0.0)
    lo = np.array([0, 3, 17, 40][: 1 + (length > 0) * 3])
    lo = lo[lo + length <= len(values) - 1]
    got = pairwise_sums(values, lo, lo + length)
    want = np.array([np.sum(values[a : a + length]) for a in lo])
    assert got.tobytes() == want.tobytes()
