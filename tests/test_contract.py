"""The data contract: header handling, and that schema and suite are derived from the one column list."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fraud_detection import contract

SAMPLE = Path(__file__).parent / "fixtures" / "published_sample.csv"  # rows of the published format


def test_published_header_with_and_without_index_column():
    header = next(csv.reader(SAMPLE.open()))
    assert header[0] == ""
    assert contract.check_header(header) == list(contract.COLUMN_NAMES)
    assert contract.check_header(header[1:]) == list(contract.COLUMN_NAMES)


def test_header_errors_name_the_columns():
    header = list(contract.COLUMN_NAMES)
    header.remove("amt")
    header.append("amount")
    with pytest.raises(contract.ContractError, match=r"missing=\['amt'\].*unexpected=\['amount'\]"):
        contract.check_header(header)


def test_suite_is_derived_from_the_columns():
    exps = contract.expectations()
    kinds = {(type(e).__name__, getattr(e, "column", None)) for e in exps}
    for c in contract.COLUMNS:
        if c.required:
            assert ("ExpectColumnValuesToNotBeNull", c.name) in kinds
        if c.dtype != "string":
            assert ("ExpectColumnValuesToBeInSet", c.name + contract.CAST_CHECK_SUFFIX) in kinds
    assert ("ExpectColumnValuesToBeUnique", "trans_num") in kinds
    amt = next(e for e in exps if type(e).__name__ == "ExpectColumnValuesToBeBetween" and e.column == "amt")
    assert amt.strict_min and amt.min_value == 0


def test_ddl_lists_every_column_once():
    ddl = contract.spark_table_ddl()
    assert all(f"`{c}`" in ddl for c in contract.COLUMN_NAMES)
    assert len(contract.CATEGORIES) == 14
