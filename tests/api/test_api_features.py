"""Feature parity on the serving path: history kept by the online store (SQLite, DynamoDB) gives the
features the row engine computes from each card's true, complete history; and the API's scores for a
replayed sequence equal the trained pipeline's on those features."""

from __future__ import annotations

import threading

import boto3
import numpy as np
import pytest
from api_support import HASH_KEY, to_request
from factories import row_features

from api.fast_features import ListHistory, transaction_features
from api.schemas import Transaction
from fraud_detection import artifacts, card_history, features
from fraud_detection.card_key import card_key
from fraud_detection.free_port import free_port


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def dynamo(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import requests

    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
    return boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")


def _replay(rows, history_store) -> np.ndarray:
    """Serving path in time order: read the card's stored history, build features, record the transaction."""
    out = []
    for row in rows:
        txn = Transaction.model_validate(to_request(row)).__dict__
        ck = card_key(txn["cc_num"], HASH_KEY)
        rec = features.history_record(txn)
        out.append(transaction_features(txn, ListHistory(history_store.read(ck, rec[0]))))
        history_store.append(ck, txn["trans_num"], rec)
    return np.array(out)


def _assert_equal(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-identical: a last-bit difference can flip a split whose threshold is a value seen in training."""
    assert got.shape == want.shape
    bad = [(i, features.FEATURE_NAMES[j], got[i, j], want[i, j]) for i, j in zip(*np.nonzero(got != want), strict=True)]
    assert not bad, bad[:5]


def test_sqlite_history_path_equals_row_engine_on_true_history(rows, tmp_path):
    subset = rows[:2500]
    store = card_history.SqliteCardHistory(tmp_path / "h.sqlite")
    got = _replay(subset, store)
    want = row_features(subset)
    _assert_equal(got, want)
    assert (want[:, features.FEATURE_NAMES.index("n_30d")] > 0).mean() > 0.5  # history features are exercised


def test_fast_engine_equals_row_engine_on_numpy_history(rows):
    subset = rows[:1500]
    recs = {}
    for r in subset:
        recs.setdefault(r["cc_num"], []).append(features.history_record(r))
    for r in subset[::3]:
        want = features.transaction_features(r, features.History.from_records(recs[r["cc_num"]]))
        got = transaction_features(Transaction.model_validate(to_request(r)).__dict__, ListHistory(recs[r["cc_num"]]))
        assert got == want


def test_dynamodb_history_path_equals_row_engine(rows, dynamo):
    card_history.create_dynamo_table(dynamo, "card-history")
    store = card_history.DynamoCardHistory("card-history", client=dynamo)
    cards = sorted({r["cc_num"] for r in rows})[:12]
    subset = [r for r in rows if r["cc_num"] in cards][:400]
    got = _replay(subset, store)
    _assert_equal(got, row_features(subset))
    # items carry the keyed hash and a TTL, never the card number
    items = dynamo.scan(TableName="card-history", Limit=5)["Items"]
    assert items and all("expires_at" in i and len(i["card_key"]["S"]) == 64 for i in items)
    assert not any(c in str(items) for c in cards)
    ttl = dynamo.describe_time_to_live(TableName="card-history")["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"


def test_dynamodb_batch_reads_and_writes_run_concurrently_and_equal_one_at_a_time(dynamo):
    """A batch's Queries and BatchWriteItems overlap (up to ``concurrency`` in flight, counted by botocore's
    own call events on real HTTP calls to the emulator) and store and return what one at a time does."""
    card_history.create_dynamo_table(dynamo, "card-history")
    in_flight, most = [0], [0]
    lock = threading.Lock()

    def started(**_):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])

    def ended(**_):
        with lock:
            in_flight[0] -= 1

    for op in ("Query", "BatchWriteItem"):
        dynamo.meta.events.register(f"before-call.dynamodb.{op}", started)
        dynamo.meta.events.register(f"after-call.dynamodb.{op}", ended)
    concurrent = card_history.DynamoCardHistory("card-history", client=dynamo, concurrency=8)
    one_at_a_time = card_history.DynamoCardHistory("card-history", client=dynamo, concurrency=1)
    keys = [f"{i:064x}" for i in range(40)]
    items = [
        (k, f"t{k[-3:]}-{j}", (1_600_000_000 + 3600 * j, 10.0 + j + i / 7, j % 5))
        for i, k in enumerate(keys)
        for j in range(6)
    ]
    concurrent.append_many(items)  # 240 items: 10 BatchWriteItem calls
    assert most[0] > 1
    most[0] = 0
    got = concurrent.read_many(keys, 1_600_000_000, 1_600_000_000 + 86_400)
    assert most[0] > 1 and list(got) == keys
    assert got == one_at_a_time.read_many(keys, 1_600_000_000, 1_600_000_000 + 86_400)
    assert {k: {(r[0], tid): r for kk, tid, r in items if kk == k} for k in keys} == got
    with pytest.raises(Exception, match="ResourceNotFound|non-existent table"):
        card_history.DynamoCardHistory("no-such-table", client=dynamo, concurrency=8).read_many(keys[:3], 0, 1)
    concurrent.close()


def test_api_replay_scores_equal_pipeline_on_true_history_features(client, auth, rows, store):
    subset = rows[:300]
    _, model = artifacts.load_latest(store)
    want = model.predict_proba(row_features(subset))[:, 1]
    got = np.array(
        [client.post("/v1/score", json=to_request(r), headers=auth).json()["fraud_probability"] for r in subset]
    )
    assert np.array_equal(got, want)
    # replaying the same transactions again stores nothing twice: the same features, the same scores
    again = np.array(
        [client.post("/v1/score", json=to_request(r), headers=auth).json()["fraud_probability"] for r in subset[:50]]
    )
    assert np.array_equal(again, want[:50])


def test_api_batch_replay_equals_pipeline(client, auth, rows, store):
    subset = rows[:1000]
    _, model = artifacts.load_latest(store)
    want = model.predict_proba(row_features(subset))[:, 1]
    got = []
    for i in range(0, len(subset), 250):
        r = client.post(
            "/v1/score/batch", json={"transactions": [to_request(x) for x in subset[i : i + 250]]}, headers=auth
        )
        got += [x["fraud_probability"] for x in r.json()["results"]]
    assert np.array_equal(np.array(got), want)


def _dynamodb_settings(store, api_key, dynamo, moto_endpoint):
    """Settings of an app whose card history and prediction log are fresh DynamoDB tables (moto)."""
    from api_support import make_settings

    from fraud_detection import prediction_log

    card_history.create_dynamo_table(dynamo, "hist")
    prediction_log.create_dynamo_table(dynamo, "plog")
    return make_settings(
        store,
        api_key[1],
        kv_backend="dynamodb",
        card_history_table="hist",
        prediction_log_table="plog",
        aws_endpoint_url=moto_endpoint,
    )


def test_api_on_dynamodb_backend(store, rows, api_key, auth, dynamo, moto_endpoint):
    from fastapi.testclient import TestClient

    from api.main import create_app

    settings = _dynamodb_settings(store, api_key, dynamo, moto_endpoint)
    subset = rows[:60]
    _, model = artifacts.load_latest(store)
    want = model.predict_proba(row_features(subset))[:, 1]
    with TestClient(create_app(settings, store)) as c:
        got = [c.post("/v1/score", json=to_request(r), headers=auth).json()["fraud_probability"] for r in subset]
    assert np.array_equal(got, want)
    logged = dynamo.scan(TableName="plog")["Items"]
    assert len(logged) == 60
    assert {i["trans_num"]["S"] for i in logged} == {r["trans_num"] for r in subset}
    assert not any(r["cc_num"] in str(logged) for r in subset)


def test_api_batch_on_dynamodb_backend(store, rows, api_key, auth, dynamo, moto_endpoint):
    """/v1/score/batch with the DynamoDB history: one Query per card of the batch, the batch's own
    transactions as each other's history, stored once, then scores equal to the pipeline's."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    settings = _dynamodb_settings(store, api_key, dynamo, moto_endpoint)
    cards = sorted({r["cc_num"] for r in rows})[:10]
    subset = [r for r in rows if r["cc_num"] in cards][:240]
    _, model = artifacts.load_latest(store)
    want = model.predict_proba(row_features(subset))[:, 1]
    got = []
    with TestClient(create_app(settings, store)) as c:
        for i in range(0, len(subset), 80):  # later batches read the earlier ones from DynamoDB
            body = {"transactions": [to_request(x) for x in subset[i : i + 80]]}
            results = c.post("/v1/score/batch", json=body, headers=auth).json()["results"]
            got += [x["fraud_probability"] for x in results]
        # the first batch sent again: stored transactions are not counted twice
        again = c.post(
            "/v1/score/batch", json={"transactions": [to_request(x) for x in subset[:80]]}, headers=auth
        ).json()["results"]
    assert np.array_equal(np.array(got), want)
    assert np.array_equal(np.array([x["fraud_probability"] for x in again]), want[:80])
    stored = dynamo.scan(TableName="hist", Select="COUNT")["Count"]
    assert stored == len(subset)


def test_every_fast_aggregate_equals_the_row_engines_own(rows):
    """Each history aggregate of the fast engine, and its fallback to the row engine, bit for bit."""
    from api.fast_features import FastRowOps, _numpy_hist

    recs: dict[str, list] = {}
    for r in rows[:1500]:
        recs.setdefault(r["cc_num"], []).append(features.history_record(r))
    checked = 0
    for r in rows[300:1500:7]:
        hist = ListHistory(recs[r["cc_num"]])
        ops = FastRowOps(Transaction.model_validate(to_request(r)).__dict__, hist)
        for what in ("count", "sum", "sumsq", "last_ts", "count_night", "count_online"):
            for window_s in features.WINDOWS.values():
                for same_category in (False, True):
                    fast = ops._hist(what, window_s, same_category)
                    assert fast == _numpy_hist(ops, hist, what, window_s, same_category), (what, window_s)
                    checked += fast != 0
    assert checked > 500
