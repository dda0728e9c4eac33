"""The data contract of the input CSV (Kaggle "Credit Card Transactions Fraud Detection" format).

This is the one definition of the input columns, their types, ranges and categories. The Spark read
schema (``spark_read_schema``), the typed cast (``spark_typed_columns``), the great-expectations suite
(``expectations``) and the API's request model are all derived from ``COLUMNS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

DType = Literal["timestamp", "date", "long", "int", "double", "string"]

TIMESTAMP_FORMAT = "yyyy-MM-dd HH:mm:ss"  # Spark pattern
TIMESTAMP_FORMAT_PY = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "yyyy-MM-dd"
DATE_FORMAT_PY = "%Y-%m-%d"

# Name Spark gives the unnamed leading index column of the published files.
INDEX_COLUMN = "_c0"
CARD_DIGITS = (8, 19)  # a card number is 8 to 19 digits (the published data has 11 to 19)

CATEGORIES: tuple[str, ...] = (
    "entertainment",
    "food_dining",
    "gas_transport",
    "grocery_net",
    "grocery_pos",
    "health_fitness",
    "home",
    "kids_pets",
    "misc_net",
    "misc_pos",
    "personal_care",
    "shopping_net",
    "shopping_pos",
    "travel",
)
GENDERS: tuple[str, ...] = ("F", "M")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    required: bool = True
    min_value: float | None = None
    max_value: float | None = None
    strict_min: bool = False  # min_value excluded (amt > 0)
    allowed: tuple[Any, ...] | None = None
    regex: str | None = None
    unique: bool = False
    pii: bool = False
    description: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("trans_date_trans_time", "timestamp", description="local time of the transaction"),
    Column(
        "cc_num",
        "string",
        regex=f"^[0-9]{{{CARD_DIGITS[0]},{CARD_DIGITS[1]}}}$",
        pii=True,
        description="card number (never a feature)",
    ),
    Column("merchant", "string", required=False, description="merchant name"),
    Column("category", "string", allowed=CATEGORIES, description="merchant category"),
    Column("amt", "double", min_value=0.0, strict_min=True, max_value=1_000_000.0, description="amount, dollars"),
    Column("first", "string", required=False, pii=True),
    Column("last", "string", required=False, pii=True),
    Column("gender", "string", allowed=GENDERS),
    Column("street", "string", required=False, pii=True),
    Column("city", "string", required=False, pii=True),
    Column("state", "string", required=False, regex=r"^[A-Z]{2}$"),
    Column("zip", "int", required=False, min_value=0, max_value=99999, pii=True),
    Column("lat", "double", min_value=-90.0, max_value=90.0, pii=True, description="cardholder home latitude"),
    Column("long", "double", min_value=-180.0, max_value=180.0, pii=True, description="cardholder home longitude"),
    Column("city_pop", "long", min_value=0, description="population of the cardholder's city"),
    Column("job", "string", required=False, pii=True),
    Column("dob", "date", pii=True, description="cardholder date of birth"),
    # not personal in itself, but a sender's id: a card number fits in its 32 hex digits (0-9 are hex)
    Column("trans_num", "string", regex=r"^[0-9a-fA-F]{32}$", unique=True, pii=True, description="transaction id"),
    Column("unix_time", "long", required=False, description="seconds; offset from trans_date_trans_time"),
    Column("merch_lat", "double", min_value=-90.0, max_value=90.0),
    Column("merch_long", "double", min_value=-180.0, max_value=180.0),
    Column("is_fraud", "int", allowed=(0, 1), description="label"),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
# The columns whose values never leave in a report, a Data Docs page, a reason file or a log: counts of
# unexpected values only (spark_jobs/validate.py).
PERSONAL_COLUMNS: frozenset[str] = frozenset(c.name for c in COLUMNS if c.pii)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
LABEL = "is_fraud"
TIMESTAMP = "trans_date_trans_time"
CARD = "cc_num"
ID = "trans_num"


class ContractError(ValueError):
    """The input does not follow the data contract."""


def check_header(header: list[str]) -> list[str]:
    """Return the data columns of a CSV header, accepting an optional leading unnamed index column.

    Raises ContractError naming missing or unexpected columns.
    """
    cols = [h.strip() for h in header]
    if cols and cols[0] in ("", "Unnamed: 0", INDEX_COLUMN):
        cols = cols[1:]
    missing = [c for c in COLUMN_NAMES if c not in cols]
    extra = [c for c in cols if c not in BY_NAME]
    if missing or extra:
        raise ContractError(f"header does not match the contract: missing={missing} unexpected={extra}")
    return cols


# --- Spark forms (pyspark imported lazily) -------------------------------------------------------

_SPARK_TYPES = {
    "timestamp": "timestamp",
    "date": "date",
    "long": "bigint",
    "int": "int",
    "double": "double",
    "string": "string",
}


def spark_read_schema(header: list[str]):  # -> StructType
    """All-string schema in the file's own column order: castability is checked, not assumed."""
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType([StructField(h if h else INDEX_COLUMN, StringType(), True) for h in header])


def spark_typed_column(col: Column):  # -> pyspark Column
    from pyspark.sql import functions as F

    raw = F.trim(F.col(col.name))
    if col.dtype == "timestamp":
        return F.to_timestamp(raw, TIMESTAMP_FORMAT).alias(col.name)
    if col.dtype == "date":
        return F.to_date(raw, DATE_FORMAT).alias(col.name)
    if col.dtype == "string":
        return F.col(col.name).alias(col.name)
    return raw.cast(_SPARK_TYPES[col.dtype]).alias(col.name)


def spark_typed_columns() -> list:
    return [spark_typed_column(c) for c in COLUMNS]


def spark_table_ddl() -> str:
    return ", ".join(f"`{c.name}` {_SPARK_TYPES[c.dtype]}" for c in COLUMNS)


# --- great-expectations suite (imported lazily) --------------------------------------------------

CAST_CHECK_SUFFIX = "__castable"


def expectations() -> list:
    """The validation suite, derived from COLUMNS.

    Runs on a DataFrame holding the typed columns plus, for every non-string column, a boolean
    ``<name>__castable`` that is false when a present raw value did not parse.
    """
    import great_expectations.expectations as gxe

    out: list = [gxe.ExpectTableColumnsToMatchSet(column_set=list(COLUMN_NAMES), exact_match=False)]
    for c in COLUMNS:
        if c.dtype != "string":
            out.append(gxe.ExpectColumnValuesToBeInSet(column=c.name + CAST_CHECK_SUFFIX, value_set=[True]))
        if c.required:
            out.append(gxe.ExpectColumnValuesToNotBeNull(column=c.name))
        if c.min_value is not None or c.max_value is not None:
            out.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=c.name,
                    min_value=c.min_value,
                    max_value=c.max_value,
                    strict_min=c.strict_min,
                )
            )
        if c.allowed is not None:
            out.append(gxe.ExpectColumnValuesToBeInSet(column=c.name, value_set=list(c.allowed)))
        if c.regex is not None:
            out.append(gxe.ExpectColumnValuesToMatchRegex(column=c.name, regex=c.regex))
        if c.unique:
            out.append(gxe.ExpectColumnValuesToBeUnique(column=c.name))
    return out
