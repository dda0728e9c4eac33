"""The quick file check the handler runs on the first 64 KB (no Spark, no AWS)."""

from __future__ import annotations

import pytest
from conftest import HEADER, ROW, good_csv

from fraud_detection.contract import ContractError
from retrain_lambda.intake import HEAD_BYTES, check_head


def cut_inside_a_character() -> bytes:
    base = (HEADER + "\n" + "\n".join([ROW] * 200) + "\n").encode()
    marker = ROW.index("Cynthia")
    pad = HEAD_BYTES - 1 - len(base) - len(ROW[:marker].encode())
    body = base + ROW.replace("Cynthia", "A" * pad + "ë").encode() + b"\n"
    assert body[HEAD_BYTES - 1 : HEAD_BYTES + 1] == "ë".encode()
    return body


def head_of(body: bytes) -> bytes:
    return body[:HEAD_BYTES]


@pytest.mark.parametrize(
    "body",
    [
        good_csv(),
        good_csv().replace(b"\n", b"\r\n"),  # Windows line endings
        b"\xef\xbb\xbf" + good_csv(),  # UTF-8 BOM
        good_csv().replace(b",trans_date", b"Unnamed: 0,trans_date", 1),  # pandas-written index column
        "\n".join([HEADER[1:], ROW.split(",", 1)[1]]).encode() + b"\n",  # no index column at all
        (HEADER + "\n" + "\n".join([ROW] * 2000) + "\n").encode(),  # > 64 KB: the head ends mid-row
        None,  # built below: the 64 KB head ends inside a 2-byte character
    ],
    ids=["plain", "crlf", "bom", "unnamed-index", "no-index", "large", "large-multibyte"],
)
def test_contract_files_pass(body):
    body = body or cut_inside_a_character()
    cols = check_head("x.csv", len(body), head_of(body))
    assert "trans_num" in cols


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("x.csv", b"", "empty"),
        ("x.csv", b"\n\n  \n", "empty"),
        ("x.CSV.gz", good_csv(), "not a .csv"),
        ("x.csv", (HEADER.replace(",is_fraud", "") + "\n" + ROW + "\n").encode(), "missing=['is_fraud']"),
        ("x.csv", (HEADER + ",extra\n" + ROW + ",1\n").encode(), "unexpected=['extra']"),
        ("x.csv", (HEADER + "\n").encode(), "no rows"),
        ("x.csv", (HEADER + "\n1,2,3\n").encode(), "first row has 3 fields"),
        ("x.csv", b"\xff\xfe" + "a,b".encode("utf-16-le"), "not UTF-8"),
    ],
)
def test_bad_files_rejected_with_a_reason(name, body, message):
    with pytest.raises(ContractError, match=None) as exc:
        check_head(name, len(body), head_of(body))
    assert message in str(exc.value)
