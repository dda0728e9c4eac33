"""Requests carrying card numbers in every field and shape (cc_num as a string and as an integer, a card
number hidden in a 32-hex trans_num, in the merchant, name, street and job fields, in the request id, in
fields the API rejects) leave no card number in the card history, the prediction log (SQLite, with its
WAL) or the log lines: only keyed hashes. The training side of the same check is
tests/test_hostile_inputs.py."""

from __future__ import annotations

from api_support import HASH_KEY, to_request
from log_capture import json_log_lines

from fraud_detection.card_key import TRANS_ID_DIGITS, stored_trans_id

CARDS = ["4000323412349873", "5555555555554444", "378282246310005"]


def forms() -> set[bytes]:
    out = set()
    for c in CARDS:
        out |= {c.encode(), " ".join(c[i : i + 4] for i in range(0, len(c), 4)).encode()}
        out.add("-".join(c[i : i + 4] for i in range(0, len(c), 4)).encode())
    return out


def carded(row: dict, card: str, n: int) -> dict:
    body = to_request(row)
    body |= {
        "cc_num": card if n % 2 else int(card),
        # unique in a batch; 32 hex digits holding the card number
        "trans_num": (f"{card}{n:02x}" + "abcdef" * 3)[:32] if n % 3 else (card * 3)[:30] + f"{n:02d}",
        "merchant": f"fraud_shop {card}",
        "first": card,
        "last": f"{card}x",
        "street": " ".join(card[i : i + 4] for i in range(0, len(card), 4)),
        "city": "-".join(card[i : i + 4] for i in range(0, len(card), 4)),
        "job": f"card:{card}",
    }
    return body


def test_card_numbers_in_every_field_are_stored_nowhere(client, auth, rows, store):
    with json_log_lines() as stream:
        accepted = []
        for n, row in enumerate(rows[:12]):
            card = CARDS[n % len(CARDS)]
            body = carded(row, card, n)
            r = client.post("/v1/score", json=body, headers=auth | {"X-Request-ID": f"req-{card}"})
            assert r.status_code == 200, r.text
            assert r.json()["trans_num"] == body["trans_num"]  # the sender's id is echoed, not stored
            accepted.append(body["trans_num"])
        batch = [carded(row, CARDS[n % 3], n) for n, row in enumerate(rows[12:24])]
        r = client.post("/v1/score/batch", json={"transactions": batch}, headers=auth)
        assert r.status_code == 200, r.text
        accepted += [b["trans_num"] for b in batch]
        # rejected shapes: the 422 answers go back to the sender, the log lines are redacted
        for bad in ({"cc_num": CARDS[0] + ".5"}, {"category": CARDS[1]}, {"trans_num": " ".join([CARDS[0]] * 2)}):
            r = client.post("/v1/score", json=to_request(rows[30]) | bad, headers=auth)
            assert r.status_code == 422, r.text
        assert client.app.state.prediction_log.flush(10)

    state = store.path("state")
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name.startswith("prediction_log") for p in files) and any("history" in p.name for p in files)
    hits = [(p.name, f) for p in files for f in forms() if f in p.read_bytes()]
    hits += [("logs", f) for f in forms() if f in stream.getvalue().encode()]
    assert not hits, hits
    # the ids are stored as their keyed hashes, which the training snapshot computes the same way
    blob = b"".join(p.read_bytes() for p in files)
    assert all(stored_trans_id(t, HASH_KEY).encode() in blob for t in accepted[:5])


def test_stored_trans_id_changes_only_ids_with_a_card_length_digit_run():
    plain = "807f9ec4fb90ac06c054694a2f666f97"
    assert stored_trans_id(plain, "k") == plain
    runs = "a" + "1" * TRANS_ID_DIGITS + "b" * (31 - TRANS_ID_DIGITS)
    hashed = stored_trans_id(runs, "k")
    assert hashed != runs and len(hashed) == 32 and hashed.startswith("h") and hashed == stored_trans_id(runs, "k")
    assert stored_trans_id(runs, "other key") != hashed
    assert stored_trans_id("a" + "1" * (TRANS_ID_DIGITS - 1) + "b" * 21, "k").startswith("a")
