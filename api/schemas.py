"""Request and response shapes, derived from the data contract (``fraud_detection.contract.COLUMNS``).

Every contract column becomes a field with the contract's type, range, categories and pattern; the
columns the model needs (``features.INPUT_COLUMNS``) are required, the rest optional, the label is
ignored. Numbers are strict (no strings), never NaN or infinite, and bounded even where the contract is
open-ended, so nothing a client sends can reach the features as an unrepresentable value.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NaiveDatetime, StringConstraints, create_model

from fraud_detection import contract, features

MIN_TIME = datetime(1970, 1, 2)
MAX_TIME = datetime(2100, 1, 1)
OPEN_BOUND = 1e15  # bound for numbers the contract leaves open (keeps every float conversion finite)

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


# Every check below is a pydantic-core constraint (no Python validator): a batch of 1,000 transactions is
# validated in Rust straight from its JSON bytes.
CardNumber = Annotated[
    str,
    Field(coerce_numbers_to_str=True),  # a JSON number is taken as its digits
    StringConstraints(strip_whitespace=True, pattern=contract.BY_NAME[contract.CARD].regex),
]
LocalTime = Annotated[NaiveDatetime, Field(ge=MIN_TIME, lt=MAX_TIME)]  # wall-clock time, no time zone
BirthDate = Annotated[date, Field(ge=date(1900, 1, 1), lt=MAX_TIME.date())]


def _field_for(col: contract.Column) -> tuple[Any, Any]:
    required = col.name in features.INPUT_COLUMNS
    kwargs: dict[str, Any] = {"description": col.description or None}
    if col.name == contract.CARD:
        typ: Any = CardNumber
        kwargs["description"] = (
            f"card number, {contract.CARD_DIGITS[0]} to {contract.CARD_DIGITS[1]} digits (string or number); "
            "stored and logged only as a keyed hash"
        )
    elif col.allowed is not None:
        typ = Literal[col.allowed]  # type: ignore[valid-type]
    elif col.dtype == "timestamp":
        typ = LocalTime
        kwargs["description"] = (
            f"local time of the transaction, 'YYYY-MM-DD HH:MM:SS' without a time zone, "
            f"from {MIN_TIME:%Y-%m-%d} to {MAX_TIME:%Y-%m-%d}"
        )
    elif col.dtype == "date":
        typ = BirthDate
    elif col.dtype in ("long", "int"):
        typ = int
        kwargs["strict"] = True
        kwargs["ge"] = int(col.min_value) if col.min_value is not None else -int(OPEN_BOUND)
        kwargs["le"] = int(col.max_value) if col.max_value is not None else int(OPEN_BOUND)
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
            extra="forbid", json_schema_extra={"examples": [{"transactions": [EXAMPLE, {**EXAMPLE, "amt": 912.4}]}]}
        ),
        transactions=(
            list[Transaction],  # type: ignore[valid-type]
            Field(..., min_length=1, max_length=max_batch, description=f"1 to {max_batch} transactions"),
        ),
    )


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
