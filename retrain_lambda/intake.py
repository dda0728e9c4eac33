"""The retraining intake: what happens to a file that lands in ``landing/``. Runs without Lambda.

For each S3 object (one event record) — exactly once per bucket + key + version id / ETag:

1. claim it in the key-value store (one conditional write); a duplicate event stops here;
2. check it quickly: a ``.csv`` name, UTF-8 text, not empty, a header matching the data contract
   (an unnamed leading index column allowed), at least one row with as many fields as the header;
3. bad file: copy to ``quarantine/`` with ``<name>.reason.json``, remove from ``landing/``, start nothing;
   good file: copy to ``raw/`` (immutable: a different file of the same name gets a suffixed name);
4. once per batch: ask the launcher for one training run on all of ``raw/`` (started now, or pending
   until the running one ends), then remove the good files from ``landing/`` and complete the claims.

A failure before the run is requested releases the claims and re-raises, so the event is retried (and
ends in the dead-letter queue if it keeps failing); nothing is lost and nothing runs twice.
"""

from __future__ import annotations

import csv
import filecmp
import io
import json
import logging
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from fraud_detection import contract
from fraud_detection.idempotency import AlreadyInProgress, KeyValueStore, open_kv
from fraud_detection.launcher import LaunchResult, launcher_from_settings, utc_now
from fraud_detection.storage import LocalStore, S3Store, Store, store_from_settings
from retrain_lambda.events import GlueJobStateChange, S3ObjectEvent

log = logging.getLogger("retrain_lambda")

LANDING, RAW, QUARANTINE = "landing/", "raw/", "quarantine/"
HEAD_BYTES = 65536


@dataclass
class Deps:
    """What the intake works with; built from settings, or by tests."""

    settings: Any
    store: Store
    kv: KeyValueStore
    launcher: Any  # LocalLauncher | GlueLauncher

    @classmethod
    def from_settings(cls, settings) -> Deps:
        store = store_from_settings(settings)
        kv = open_kv(settings, store)
        return cls(settings, store, kv, launcher_from_settings(settings, store, kv))


@dataclass
class FileOutcome:
    key: str
    status: str  # accepted | quarantined | duplicate | in_progress | ignored | gone
    raw_key: str | None = None
    quarantine_key: str | None = None
    reason: str | None = None
    run_id: str | None = None


@dataclass
class IntakeResult:
    files: list[FileOutcome] = field(default_factory=list)
    launch: LaunchResult | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"files": [asdict(f) for f in self.files], "launch": self.launch.as_dict() if self.launch else None}


# ------------------------------------------------------------------------------------------ checks
def check_head(name: str, size: int, head: bytes) -> list[str]:
    """The file's header if the first bytes look like a contract CSV; else ContractError saying why."""
    if not name.lower().endswith(".csv"):
        raise contract.ContractError(f"not a .csv file: {name}")
    if size == 0 or not head.strip():
        raise contract.ContractError("file is empty")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if len(head) < HEAD_BYTES or exc.start < len(head) - 4:  # not a multi-byte char cut at the end
            raise contract.ContractError(f"not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
        text = head[: exc.start].decode("utf-8-sig")
    if "\x00" in text:
        raise contract.ContractError("binary content (NUL bytes), not a CSV")
    lines = text.splitlines()
    header = next(csv.reader(io.StringIO(lines[0])), [])
    contract.check_header(header)
    rows = [ln for ln in lines[1:] if ln.strip()]
    if not rows:
        raise contract.ContractError("file has a header but no rows")
    first = next(csv.reader(io.StringIO(rows[0])), [])
    if len(first) != len(header) and (len(lines) > 2 or len(head) < HEAD_BYTES):
        raise contract.ContractError(f"first row has {len(first)} fields, the header {len(header)}")
    return header


# ---------------------------------------------------------------------------------- store helpers
def store_key(store: Store, ev: S3ObjectEvent) -> str | None:
    """The event's key relative to the store root, or None if the event is about another bucket/prefix."""
    if isinstance(store, S3Store):
        if ev.bucket != store.bucket:
            return None
        if store.prefix:
            return ev.key[len(store.prefix) + 1 :] if ev.key.startswith(store.prefix + "/") else None
    return ev.key


def _head(store: Store, key: str, version_id: str | None) -> int | None:
    if isinstance(store, S3Store) and version_id:
        from botocore.exceptions import ClientError

        try:
            return int(
                store.client.head_object(Bucket=store.bucket, Key=store._k(key), VersionId=version_id)["ContentLength"]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                return None
            raise
    info = store.head(key)
    return None if info is None else info.size


def _read_head(store: Store, key: str, version_id: str | None) -> bytes:
    if isinstance(store, S3Store):
        kw = {"VersionId": version_id} if version_id else {}
        r = store.client.get_object(Bucket=store.bucket, Key=store._k(key), Range=f"bytes=0-{HEAD_BYTES - 1}", **kw)
        return r["Body"].read()
    if isinstance(store, LocalStore):
        with open(store.path(key), "rb") as fh:
            return fh.read(HEAD_BYTES)
    return store.read_bytes(key)[:HEAD_BYTES]


def _copy(store: Store, src: str, dst: str, version_id: str | None) -> None:
    if isinstance(store, S3Store):
        source = {"Bucket": store.bucket, "Key": store._k(src)} | ({"VersionId": version_id} if version_id else {})
        extra = store.encryption_args(dst)  # raw/ and quarantine/: the stack's data key
        store.client.copy_object(Bucket=store.bucket, Key=store._k(dst), CopySource=source, **extra)
    else:
        store.copy(src, dst)


def _same_content(store: Store, a: str, b: str) -> bool:
    if isinstance(store, LocalStore):
        return filecmp.cmp(store.path(a), store.path(b), shallow=False)
    ha, hb = store.head(a), store.head(b)
    return ha is not None and hb is not None and ha.size == hb.size and ha.etag == hb.etag


def _raw_key(store: Store, landing_key: str, tag: str) -> str:
    """``raw/<path under landing>``; never overwrites a different file (raw/ is immutable)."""
    rel = landing_key[len(LANDING) :]
    dst = RAW + rel
    if store.head(dst) is None or _same_content(store, landing_key, dst):
        return dst
    stem, dot, ext = rel.rpartition(".")
    safe = re.sub(r"[^A-Za-z0-9]", "", tag)[:16] or utc_now().replace(":", "")
    return f"{RAW}{stem}.{safe}.{ext}" if dot else f"{RAW}{rel}.{safe}"


def quarantine(store: Store, ev: S3ObjectEvent, key: str, error: str) -> str:
    dst = QUARANTINE + key[len(LANDING) :]
    _copy(store, key, dst, ev.version_id)
    reason = {
        "file": key.rsplit("/", 1)[-1],
        "error": error,
        "source": key,
        "size": ev.size,
        "etag": ev.etag,
        "version_id": ev.version_id,
        "checked_at": utc_now(),
        "checked_by": "retrain_lambda.intake (header check)",
        "failed_expectations": [],
    }
    store.write_bytes(f"{dst}.reason.json", json.dumps(reason, indent=2).encode())
    store.delete(key)
    return dst


# -------------------------------------------------------------------------------------------- logic
def process_objects(events: list[S3ObjectEvent], deps: Deps) -> IntakeResult:
    """Quarantine or archive each new object, then request one training run for the accepted ones."""
    s = deps.settings
    ttl_s, lease_s = s.idempotency_ttl_days * 86400, s.idempotency_lease_s
    result = IntakeResult()
    claimed: list[str] = []
    accepted: list[tuple[S3ObjectEvent, FileOutcome, str]] = []
    busy: list[str] = []
    try:
        for ev in events:
            key = store_key(deps.store, ev)
            name = ev.key.rsplit("/", 1)[-1]
            if key is None or not key.startswith(LANDING) or key.endswith("/") or name.startswith("."):
                result.files.append(FileOutcome(ev.key, "ignored", reason="not a file under landing/ of this store"))
                continue
            claim = deps.kv.claim(ev.idempotency_key, lease_s=lease_s, ttl_s=ttl_s)
            if not claim.acquired:
                if claim.status == "completed":
                    prior = claim.result or {}
                    result.files.append(
                        FileOutcome(key, "duplicate", reason=f"already {prior.get('status', 'processed')}",
                                    run_id=prior.get("run_id"))
                    )  # fmt: skip
                else:
                    busy.append(key)
                    result.files.append(FileOutcome(key, "in_progress", reason="another handler holds the claim"))
                continue
            claimed.append(ev.idempotency_key)
            size = _head(deps.store, key, ev.version_id)
            if size is None:
                out = FileOutcome(key, "gone", reason="object no longer exists")
                deps.kv.complete(ev.idempotency_key, asdict(out), ttl_s=ttl_s)
                claimed.remove(ev.idempotency_key)
                result.files.append(out)
                continue
            try:
                check_head(name, size, _read_head(deps.store, key, ev.version_id) if size else b"")
            except contract.ContractError as exc:
                qkey = quarantine(deps.store, ev, key, str(exc))
                out = FileOutcome(key, "quarantined", quarantine_key=qkey, reason=str(exc))
                deps.kv.complete(ev.idempotency_key, asdict(out), ttl_s=ttl_s)
                claimed.remove(ev.idempotency_key)
                result.files.append(out)
                log.warning("file quarantined", extra={"key": key, "quarantine_key": qkey, "reason": str(exc)})
                continue
            raw = _raw_key(deps.store, key, ev.version_id or ev.etag)
            if deps.store.head(raw) is None:
                _copy(deps.store, key, raw, ev.version_id)
            out = FileOutcome(key, "accepted", raw_key=raw)
            accepted.append((ev, out, key))
            result.files.append(out)
            log.info("file accepted", extra={"key": key, "raw_key": raw})
        if accepted:
            result.launch = deps.launcher.request_run("file", [o.raw_key for _, o, _ in accepted])
    except BaseException:
        for k in claimed:  # let the retry of this event do the work again
            deps.kv.release(k)
        raise
    for ev, out, key in accepted:
        out.run_id = result.launch.run_id if result.launch else None
        try:
            deps.store.delete(key)  # archived in raw/ and covered by a run: the drop zone is emptied
        except Exception:  # noqa: BLE001 - leaving the file in landing/ is harmless: its claim is completed
            log.warning("could not remove the file from landing/", extra={"key": key}, exc_info=True)
        deps.kv.complete(
            ev.idempotency_key,
            asdict(out) | {"launch": result.launch.status if result.launch else None},
            ttl_s=ttl_s,
        )
    if busy:
        # Fail this invocation so the event is retried: the other handler may still fail and release.
        raise AlreadyInProgress(f"another handler is processing {busy}; processed the rest: {result.as_dict()}")
    return result


def process_glue_state_change(change: GlueJobStateChange, deps: Deps) -> dict[str, Any]:
    if change.job_name != deps.settings.glue_job_name or not hasattr(deps.launcher, "on_job_state_change"):
        return {
            "ignored": f"job {change.job_name} is not {deps.settings.glue_job_name} (launcher {deps.launcher.name})"
        }
    return deps.launcher.on_job_state_change(change.job_run_id, change.state, change.message)
