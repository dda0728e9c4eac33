"""Typed forms of the events the retraining function receives, parsed from their JSON."""

from __future__ import annotations

import hashlib
import urllib.parse
from dataclasses import dataclass
from typing import Any


class EventError(ValueError):
    """An event this function does not understand."""


@dataclass(frozen=True)
class S3ObjectEvent:
    """One record of an S3 notification, key URL-decoded (S3 sends ``a+b%2Cc.csv`` for ``a b,c.csv``)."""

    event_name: str
    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None
    sequencer: str | None
    event_time: str | None

    @property
    def idempotency_key(self) -> str:
        """A digest of bucket + key + the object's identity (version id when versioned, else ETag, else
        sequencer). The key is the sender's file name and may hold a card number: the table keeps none."""
        identity = (
            f"v:{self.version_id}" if self.version_id else f"e:{self.etag}" if self.etag else f"s:{self.sequencer}"
        )
        return "s3obj:" + hashlib.sha256(f"{self.bucket}/{self.key}#{identity}".encode()).hexdigest()


@dataclass(frozen=True)
class GlueJobStateChange:
    """EventBridge "Glue Job State Change" (source aws.glue)."""

    job_name: str
    job_run_id: str
    state: str
    message: str


def parse_s3_records(event: dict[str, Any]) -> list[S3ObjectEvent]:
    """ObjectCreated records of an S3 notification; test events and other record kinds are skipped."""
    out = []
    for rec in event.get("Records", []) or []:
        if rec.get("eventSource") != "aws:s3" or not str(rec.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        try:
            s3 = rec["s3"]
            obj = s3["object"]
            out.append(
                S3ObjectEvent(
                    event_name=rec["eventName"],
                    bucket=s3["bucket"]["name"],
                    key=urllib.parse.unquote_plus(obj["key"]),
                    size=int(obj.get("size", 0)),
                    etag=str(obj.get("eTag", "")).strip('"'),
                    version_id=obj.get("versionId") or None,
                    sequencer=obj.get("sequencer"),
                    event_time=rec.get("eventTime"),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EventError(f"malformed S3 event record: {exc!r}") from exc
    return out


def is_s3_event(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return isinstance(records, list) and any(r.get("eventSource") == "aws:s3" for r in records)


def is_s3_test_event(event: dict[str, Any]) -> bool:
    return event.get("Event") == "s3:TestEvent"


def parse_glue_state_change(event: dict[str, Any]) -> GlueJobStateChange | None:
    if event.get("source") != "aws.glue" or event.get("detail-type") != "Glue Job State Change":
        return None
    d = event.get("detail") or {}
    try:
        return GlueJobStateChange(d["jobName"], d["jobRunId"], d["state"], str(d.get("message", "")))
    except KeyError as exc:
        raise EventError(f"Glue Job State Change without {exc}") from exc


def s3_event(bucket: str, key: str, *, size: int, etag: str, version_id: str | None = None, sequencer: str = "0"):
    """The ObjectCreated:Put notification S3 would send for an object (what the local watcher builds)."""
    obj: dict[str, Any] = {"key": urllib.parse.quote_plus(key, safe="/"), "size": size, "eTag": etag}
    if version_id:
        obj["versionId"] = version_id
    obj["sequencer"] = sequencer
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj},
            }
        ]
    }
