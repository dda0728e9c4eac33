"""Request and response shapes, derived from the data contract (``fraud_detection.contract.COLUMNS``).

Every contract column becomes a field with the contract's type, range, categories and pattern; the
columns the model needs (``features.INPUT_COLUMNS``) are required, the rest optional, the label is
ignored. Numbers are strict (no strings), never NaN or infinite, and bounded even where the contract is
open-ended, so nothing a client sends can reach the features as an unrepresentable value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, create_model
from pydantic_core import PydanticCustomError

from fraud_detection import contract, features

OPEN_BOUND = 1e15  # bound for numbers the contract leaves open (keeps every float conversion finite)

# Calendar dates as regular expressions, so that the OpenAPI document states exactly the dates the server
# takes (a schema-driven client generates only valid ones) and the server checks exactly that pattern.
_MONTH_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
# The document bounds both dates so that every birth date it allows precedes every transaction time it
# allows: a schema-driven client cannot build a birth after its transaction, a rule JSON Schema cannot state
# between two fields. The service scores transactions from FIRST_SCORED_DAY on, for cardholders born before
# it (the published data: births 1924-2005, transactions 2019-2020). A cardholder born in 2015 or later
# gets 422 until these bounds move (both patterns below, one edit each).
FIRST_SCORED_DAY = "2015-01-01"
LAST_SCORED_DAY = "2099-12-31"
FIRST_BIRTH_DAY, LAST_BIRTH_DAY = "1900-01-01", "2014-12-31"
# transactions: 2015-01-01 to 2099-12-31 (leap years: divisible by 4)
_TIME_DATE = (
    rf"(?:20(?:1[5-9]|[2-9][0-9])-{_MONTH_DAY}"
    r"|20(?:16|[2468][048]|[3579][26])-02-29)"
)
# birth dates: 1900-01-01 to 2014-12-31 (1900 is not a leap year, 2000 is)
_BIRTH_DATE = (
    rf"(?:(?:19[0-9][0-9]|200[0-9]|201[0-4])-{_MONTH_DAY}"
    r"|(?:19(?:[02468][48]|[13579][26]|[2468]0)|20(?:0[048]|12))-02-29)"
)
TIME_PATTERN = rf"^{_TIME_DATE}[ T](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{{1,6}})?$"
BIRTH_DATE_PATTERN = rf"^{_BIRTH_DATE}$"
CARD_PATTERN = contract.BY_NAME[contract.CARD].regex
CARD_MIN, CARD_MAX = 10 ** (contract.CARD_DIGITS[0] - 1), 10 ** contract.CARD_DIGITS[1] - 1

EXAMPLE: dict[str, Any] = {
    "trans_date_trans_time": "2019-01-12 20:29:13",
    "cc_num": "4616225647185595",
    "merchant": "fraud_Heathcote, Yost and Kertzmann",
    "category": "shopping_net",
    "amt": 2.65,
    "gender": "F",
    "state": "IN",
    "lat": 39.4336,
    "long": -87.4101,
    "city_pop": 137,
    "dob": "1986-08-12",
    "trans_num": "807f9ec4fb90ac06c054694a2f666f97",
    "merch_lat": 40.201325,
    "merch_long": -86.884803,
}

SECOND_EXAMPLE = {**EXAMPLE, "amt": 912.4, "trans_num": "1f9a9c1f4e1d4bb0b5d1b1a44c3c2e7e"}  # a batch's ids differ

# Most checks below are pydantic-core constraints: a batch of 1,000 transactions is validated in Rust
# straight from its JSON bytes. The card number, the times and the whole numbers take a small Python
# validator each (about a microsecond for all three: docs/benchmarks.md, "Figures behind the code"),
# to accept exactly what the document says with a message that says what is wrong.
_TIME_RE = re.compile(TIME_PATTERN)
_BIRTH_RE = re.compile(BIRTH_DATE_PATTERN)
_CARD_RE = re.compile(CARD_PATTERN)
_BIRTH_MSG = (
    f"dob must be a date 'YYYY-MM-DD' from {FIRST_BIRTH_DAY} to {LAST_BIRTH_DAY}: the service scores transactions "
    f"from {FIRST_SCORED_DAY} on, of cardholders born before that day"
)
_CARD_MSG = (
    f"cc_num must be a string of {contract.CARD_DIGITS[0]} to {contract.CARD_DIGITS[1]} digits or a JSON integer "
    "of as many digits (a number with a fraction or an exponent is not exact: send the digits as a string)"
)


def _card_number(value: Any) -> str:
    if type(value) is str:
        value = value.strip()
        if _CARD_RE.match(value):
            return value
    elif type(value) is int and CARD_MIN <= value <= CARD_MAX:  # JSON integers are exact (any size)
        return str(value)
    raise PydanticCustomError("card_number", _CARD_MSG)


def _local_time(value: Any) -> datetime:
    if type(value) is str and _TIME_RE.match(value):
        return datetime.fromisoformat(value)
    raise PydanticCustomError(
        "local_time",
        "trans_date_trans_time must be a local time 'YYYY-MM-DD HH:MM:SS' (optionally with up to 6 decimals), "
        f"a string without a time zone, from {FIRST_SCORED_DAY} to {LAST_SCORED_DAY}",
    )


def _birth_date(value: Any) -> date:
    if type(value) is str and _BIRTH_RE.match(value):
        return date.fromisoformat(value)
    raise PydanticCustomError("birth_date", _BIRTH_MSG)


CardNumber = Annotated[
    str,
    PlainValidator(_card_number),
    # The document offers the string only. The server also takes a JSON integer literal (CSV-minded
    # clients send numbers), but JSON Schema cannot say "an integer literal": to it 4616225647185595.0 is an
    # integer, and a float may already be another card's number (4000323412349873.9 parses as ...874.0),
    # so the server refuses every number with a decimal point or an exponent. A schema-driven client
    # generating "integers" sends such floats (schemathesis: 135 of 300), so the document does not invite them.
    WithJsonSchema({"type": "string", "pattern": CARD_PATTERN}),
]
LocalTime = Annotated[
    datetime, PlainValidator(_local_time), WithJsonSchema({"type": "string", "pattern": TIME_PATTERN})
]
BirthDate = Annotated[
    date, PlainValidator(_birth_date), WithJsonSchema({"type": "string", "pattern": BIRTH_DATE_PATTERN})
]


def whole_number(name: str, lo: int, hi: int) -> Any:
    """An integer field that takes what JSON Schema's ``integer`` means: 4392 and 4392.0, not 4392.5 / "4392"."""

    def check(value: Any) -> int:
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is int and lo <= value <= hi:
            return value
        raise PydanticCustomError("whole_number", f"{name} must be a whole number from {lo} to {hi}")

    return Annotated[int, PlainValidator(check), WithJsonSchema({"type": "integer", "minimum": lo, "maximum": hi})]


def _field_for(col: contract.Column) -> tuple[Any, Any]:
    required = col.name in features.INPUT_COLUMNS
    kwargs: dict[str, Any] = {"description": col.description or None}
    if col.name == contract.CARD:
        typ: Any = CardNumber
        kwargs["description"] = (
            f"card number, a string of {contract.CARD_DIGITS[0]} to {contract.CARD_DIGITS[1]} digits (a JSON integer "
            "literal of those digits is also taken; a number with a decimal point or an exponent gets 422, as it "
            "may have been rounded to another card's number); stored and logged only as a keyed hash"
        )
    elif col.allowed is not None:
        typ = Literal[col.allowed]  # type: ignore[valid-type]
    elif col.dtype == "timestamp":
        typ = LocalTime
        kwargs["description"] = (
            "local time of the transaction, 'YYYY-MM-DD HH:MM:SS' (optionally with up to 6 decimals) without a "
            f"time zone, from {FIRST_SCORED_DAY} to {LAST_SCORED_DAY}"
        )
    elif col.dtype == "date":
        typ = BirthDate
        kwargs["description"] = (
            f"cardholder date of birth, 'YYYY-MM-DD', from {FIRST_BIRTH_DAY} to {LAST_BIRTH_DAY}: always before "
            "the transaction"
        )
    elif col.dtype in ("long", "int"):
        lo = int(col.min_value) if col.min_value is not None else -int(OPEN_BOUND)
        hi = int(col.max_value) if col.max_value is not None else int(OPEN_BOUND)
        typ = whole_number(col.name, lo, hi)
    elif col.dtype == "double":
        typ = float
        kwargs["allow_inf_nan"] = False
        kwargs["strict"] = True
        lo = col.min_value if col.min_value is not None else -OPEN_BOUND
        kwargs["gt" if col.strict_min else "ge"] = lo
        kwargs["le"] = col.max_value if col.max_value is not None else OPEN_BOUND
    else:
        typ = str
        kwargs["max_length"] = 32 if col.regex and "32" in col.regex else 200
        if col.regex:
            kwargs["pattern"] = col.regex
    if not required:
        typ = typ | None
        return (typ, Field(None, **kwargs))
    return (typ, Field(..., **kwargs))


_fields = {c.name: _field_for(c) for c in contract.COLUMNS if c.name != contract.LABEL}
_fields[contract.LABEL] = (
    Literal[0, 1] | None,
    Field(None, description="label of a historical row; accepted and ignored (never used for scoring)"),
)

Transaction = create_model(
    "Transaction",
    __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]}),
    __doc__="One card transaction in the Kaggle column vocabulary.",
    **_fields,
)


def batch_request_model(max_batch: int) -> type[BaseModel]:
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"transactions": [EXAMPLE, SECOND_EXAMPLE]}]}
        ),
        transactions=(
            list[Transaction],  # type: ignore[valid-type]
            Field(
                ...,
                min_length=1,
                max_length=max_batch,
                description=f"1 to {max_batch} transactions; each trans_num at most once (any case), or 422",
            ),
        ),
    )


def check_unique_ids(txns: Sequence[BaseModel], loc: tuple[str, ...] = ()) -> None:
    """What the schema cannot say: no trans_num twice in one batch, whatever its case (the history would
    keep one of them). RequestValidationError (422) naming each repeat."""
    errors: list[dict[str, Any]] = []
    first_index: dict[str, int] = {}
    for i, t in enumerate(txns):
        tid = t.trans_num.lower() if t.trans_num else None  # none given: the service makes a unique one
        if tid is None:
            continue
        if tid in first_index:
            errors.append(
                {
                    "loc": ("body", *loc, i, "trans_num"),
                    "msg": f"trans_num repeats transaction {first_index[tid]} of this batch: each must be unique",
                    "type": "duplicate_trans_num",
                }
            )
        else:
            first_index[tid] = i
    if errors:
        raise RequestValidationError(errors)


class ModelRef(BaseModel):
    version: str
    trained_at: str
    model_type: str
    training_data: dict[str, dict[str, Any]]
    threshold: float
    test_metrics: dict[str, float]


class ScoreResult(BaseModel):
    trans_num: str
    fraud_probability: float = Field(ge=0, le=1)
    is_fraud: bool = Field(description="fraud_probability >= the model's threshold")
    threshold: float


class ScoreResponse(ScoreResult):
    request_id: str
    model: ModelRef


class BatchResponse(BaseModel):
    request_id: str
    model: ModelRef
    results: list[ScoreResult]


class ErrorResponse(BaseModel):
    detail: Any


class HealthResponse(BaseModel):
    status: str


class ReadyResponse(BaseModel):
    status: str
    model_version: str | None = None
    reason: str | None = None
