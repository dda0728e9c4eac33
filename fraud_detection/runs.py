"""Run records: what each training run was asked to do and what came of it (``runs/<run_id>.json``)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from fraud_detection.layout import RUNS
from fraud_detection.storage import Store

Status = Literal["queued", "running", "succeeded", "rejected", "failed"]


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}Z-{secrets.token_hex(3)}"


class RunRecord(BaseModel):
    run_id: str
    trigger: str = "manual"  # manual | file | schedule | demo
    status: Status = "running"
    started_at: str
    finished_at: str | None = None
    inputs: list[str] = Field(default_factory=list)
    accepted_files: list[str] = Field(default_factory=list)
    quarantined_files: list[str] = Field(default_factory=list)
    version: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    promotion: dict[str, Any] | None = None
    timings_s: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


def run_key(run_id: str) -> str:
    return f"{RUNS}/{run_id}.json"


def save_run(store: Store, record: RunRecord) -> None:
    store.write_bytes(run_key(record.run_id), record.model_dump_json(indent=2).encode())


def load_run(store: Store, run_id: str) -> RunRecord:
    return RunRecord.model_validate_json(store.read_bytes(run_key(run_id)))


def list_runs(store: Store, limit: int = 20) -> list[RunRecord]:
    keys = [o.key for o in store.list(f"{RUNS}/") if o.key.endswith(".json") and o.key.count("/") == 1]
    return [RunRecord.model_validate_json(store.read_bytes(k)) for k in sorted(keys)[-limit:]][::-1]
