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
import io
import json
import logging
import os
import shutil
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fraud_detection import contract, file_names, layout
from fraud_detection.idempotency import AlreadyInProgress, KeyValueStore, open_kv
from fraud_detection.launcher import LaunchResult, launcher_from_settings, utc_now
from fraud_detection.logs import redact_card_numbers
from fraud_detection.storage import LocalStore, S3Store, StorageError, Store, store_from_settings
from retrain_lambda.events import GlueJobStateChange, S3ObjectEvent

log = logging.getLogger("retrain_lambda")

LANDING, RAW, QUARANTINE = (layout.prefix(f) for f in (layout.LANDING, layout.RAW, layout.QUARANTINE))
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
    status: str  # accepted | quarantined | duplicate | in_progress | ignored | gone | failed
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


# The landing object is addressed as it is named (``_full`` / ``_local``), never through the store's key
# checks: a name those refuse (``a/../b.csv`` is a legal S3 key) must still be quarantined, not stop the batch.
def _full(store: S3Store, key: str) -> str:
    return f"{store.prefix}/{key}" if store.prefix else key


def _local(store: LocalStore, key: str) -> Path:
    """The landing entry's path. A key with a ``.``/``..``/empty segment names no entry the watcher lists
    (and could leave the store): refused."""
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        raise StorageError(f"not a file under landing/: {key!r}")
    return store.root.joinpath(*key.split("/"))


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISDIR(mode):
        return "directory"
    return "special file (FIFO, socket or device)"


def _inspect(store: Store, key: str, version_id: str | None) -> tuple[int, str, str | None] | None:
    """(size, kind, link target) of the landing object, or None when it is gone. Never follows a link."""
    if isinstance(store, S3Store):
        from botocore.exceptions import ClientError

        kw = {"VersionId": version_id} if version_id else {}
        try:
            r = store.client.head_object(Bucket=store.bucket, Key=_full(store, key), **kw)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchVersion"):
                return None
            raise
        return int(r["ContentLength"]), "file", None
    path = _local(store, key)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    return st.st_size, _kind(st.st_mode), target


def _open_local(path: Path):
    """A regular file opened without following a link and without blocking on a FIFO swapped in since
    ``_inspect`` looked."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise contract.ContractError("not a regular file")
    return os.fdopen(fd, "rb")


def _read_head(store: Store, key: str, version_id: str | None) -> bytes:
    if isinstance(store, S3Store):
        kw = {"VersionId": version_id} if version_id else {}
        r = store.client.get_object(Bucket=store.bucket, Key=_full(store, key), Range=f"bytes=0-{HEAD_BYTES - 1}", **kw)
        return r["Body"].read()
    with _open_local(_local(store, key)) as fh:
        return fh.read(HEAD_BYTES)


def _copy(store: Store, src: str, dst: str, version_id: str | None) -> None:
    if isinstance(store, S3Store):
        source = {"Bucket": store.bucket, "Key": _full(store, src)} | ({"VersionId": version_id} if version_id else {})
        extra = store.encryption_args(dst)  # raw/ and quarantine/: the stack's data key
        store.client.copy_object(Bucket=store.bucket, Key=store._k(dst), CopySource=source, **extra)
        return
    dest = store.path(dst)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.copy.tmp")
    with _open_local(_local(store, src)) as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    os.replace(tmp, dest)


def _delete_source(store: Store, key: str) -> None:
    if isinstance(store, S3Store):
        store.client.delete_object(Bucket=store.bucket, Key=_full(store, key))
        return
    path = _local(store, key)
    if os.path.isdir(path) and not os.path.islink(path):
        os.rmdir(path)  # only an empty directory reaches here: the watcher hands over the files inside
    else:
        path.unlink(missing_ok=True)


def _same_content(store: Store, src: str, dst: str) -> bool:
    if isinstance(store, LocalStore):
        try:
            with _open_local(_local(store, src)) as a, open(store.path(dst), "rb") as b:
                while True:
                    x, y = a.read(1 << 20), b.read(1 << 20)
                    if x != y:
                        return False
                    if not x:
                        return True
        except OSError:
            return False
    hb = store.head(dst)
    src = store.client.head_object(Bucket=store.bucket, Key=_full(store, src))  # type: ignore[union-attr]
    return hb is not None and int(src["ContentLength"]) == hb.size and src["ETag"].strip('"') == hb.etag


def _raw_key(store: Store, landing_key: str, tag: str) -> str:
    """``raw/<path under landing>`` (storable form); never overwrites a different file (raw/ is immutable)."""
    rel = file_names.stored_name(landing_key[len(LANDING) :])
    if store.head(RAW + rel) is not None and _same_content(store, landing_key, RAW + rel):
        return RAW + rel  # the same file dropped again: one copy
    return file_names.free_key(RAW, rel, tag, lambda k: store.head(k) is not None)


def quarantine(
    store: Store, ev: S3ObjectEvent, key: str, error: str, *, kind: str = "file", note: str | None = None
) -> str:
    """Move the landing object to ``quarantine/`` under a name no earlier file holds, with its reason.
    ``note``: what to keep instead of the object's bytes (a link is never followed)."""
    rel = file_names.stored_name(key[len(LANDING) :])
    tag = ev.version_id or ev.etag or utc_now()
    dst = file_names.free_key(
        QUARANTINE, rel, tag, lambda k: store.head(k) is not None or store.head(k + ".reason.json") is not None
    )
    moved = False
    if note is not None:
        store.write_bytes(dst, note.encode())
    elif isinstance(store, LocalStore):  # a rename needs no read permission and cannot follow a link
        store.path(dst).parent.mkdir(parents=True, exist_ok=True)
        os.rename(_local(store, key), store.path(dst))
        moved = True
    else:
        _copy(store, key, dst, ev.version_id)
    reason = {
        "file": redact_card_numbers(key.rsplit("/", 1)[-1]),
        "error": redact_card_numbers(error),
        "kind": kind,
        "source": redact_card_numbers(key),
        "size": ev.size,
        "etag": ev.etag,
        "version_id": ev.version_id,
        "checked_at": utc_now(),
        "checked_by": "retrain_lambda.intake (header check)",
        "failed_expectations": [],
    }
    store.write_bytes(f"{dst}.reason.json", json.dumps(reason, indent=2).encode())
    if not moved:
        _delete_source(store, key)
    return dst


class IntakeIncomplete(RuntimeError):
    """Some files could be neither archived nor quarantined (the store failed): they stay in ``landing/``
    with their claims released, so the event's retry (or the watcher's next scan) takes them again."""


# -------------------------------------------------------------------------------------------- logic
def _check(deps: Deps, ev: S3ObjectEvent, key: str) -> FileOutcome:
    """Archive or quarantine one claimed landing object; the outcome says which."""
    rel = key[len(LANDING) :]
    found = _inspect(deps.store, key, ev.version_id)
    if found is None:
        return FileOutcome(key, "gone", reason="object no longer exists")
    size, kind, target = found
    problem = f"not a regular file: a {kind}" if kind != "file" else file_names.unsafe_name(rel)
    note = None
    if kind == "symbolic link":
        problem = f"{problem} (not followed)"
        note = f"a symbolic link to {redact_card_numbers(target or '')!r} was dropped here; it was not followed\n"
    elif kind != "file":
        note = f"a {kind} was dropped here; nothing was read from it\n"
    if problem is None:
        try:
            check_head(rel.rsplit("/", 1)[-1], size, _read_head(deps.store, key, ev.version_id) if size else b"")
        except contract.ContractError as exc:
            problem = str(exc)
    if problem is not None:
        qkey = quarantine(deps.store, ev, key, problem, kind=kind, note=note)
        log.warning("file quarantined", extra={"key": key, "quarantine_key": qkey, "reason": problem})
        return FileOutcome(key, "quarantined", quarantine_key=qkey, reason=problem)
    raw = _raw_key(deps.store, key, ev.version_id or ev.etag)
    if deps.store.head(raw) is None:
        _copy(deps.store, key, raw, ev.version_id)
    log.info("file accepted", extra={"key": key, "raw_key": raw})
    return FileOutcome(key, "accepted", raw_key=raw)


def _last_resort(deps: Deps, ev: S3ObjectEvent, key: str, exc: Exception) -> FileOutcome:
    """A file whose handling raised: quarantined with the error if the store lets us, else left for a retry."""
    error = f"could not be processed: {type(exc).__name__}: {exc}"
    try:
        qkey = quarantine(deps.store, ev, key, error, kind="unreadable")
    except Exception:  # noqa: BLE001 - reported below; the other files go on
        log.error("file could not be handled; left in landing/ for a retry", extra={"key": key}, exc_info=True)
        return FileOutcome(key, "failed", reason=redact_card_numbers(error))
    log.warning("file quarantined", extra={"key": key, "quarantine_key": qkey, "reason": error}, exc_info=True)
    return FileOutcome(key, "quarantined", quarantine_key=qkey, reason=redact_card_numbers(error))


def _record(out: FileOutcome) -> dict[str, Any]:
    """What the idempotency record keeps of an outcome: the landing name as it would be stored (a card
    number in it replaced), like the ``raw/`` and ``quarantine/`` keys beside it."""
    return asdict(out) | {"key": LANDING + file_names.stored_name(out.key[len(LANDING) :])}


def process_objects(events: list[S3ObjectEvent], deps: Deps) -> IntakeResult:
    """Quarantine or archive each new object, then request one training run for the accepted ones.

    One object's failure never stops the others: it is quarantined with the error, or (when the store
    itself fails) left in ``landing/`` with its claim released, and ``IntakeIncomplete`` is raised once the
    rest is done, so the event is retried for it alone (the others are duplicates by then)."""
    s = deps.settings
    ttl_s, lease_s = s.idempotency_ttl_days * 86400, s.idempotency_lease_s
    result = IntakeResult()
    claimed: list[str] = []
    accepted: list[tuple[S3ObjectEvent, FileOutcome, str]] = []
    busy: list[str] = []
    failed: list[str] = []
    try:
        for ev in events:
            key = store_key(deps.store, ev)
            if key is None or not key.startswith(LANDING) or (key.endswith("/") and not ev.size):
                out = FileOutcome(ev.key, "ignored", reason="not a file under landing/ of this store")
                log.info("object ignored", extra={"key": ev.key, "reason": out.reason})
                result.files.append(out)
                continue
            claim = deps.kv.claim(ev.idempotency_key, lease_s=lease_s, ttl_s=ttl_s)
            if not claim.acquired:
                if claim.status == "completed":
                    prior = claim.result or {}
                    out = FileOutcome(key, "duplicate", reason=f"already {prior.get('status', 'processed')}",
                                      run_id=prior.get("run_id"))  # fmt: skip
                    log.info("duplicate event", extra={"key": key, "reason": out.reason})
                else:
                    busy.append(key)
                    out = FileOutcome(key, "in_progress", reason="another handler holds the claim")
                    log.info("object held by another handler", extra={"key": key})
                result.files.append(out)
                continue
            claimed.append(ev.idempotency_key)
            try:
                out = _check(deps, ev, key)
            except Exception as exc:  # noqa: BLE001 - one file must not stop the others
                out = _last_resort(deps, ev, key, exc)
            result.files.append(out)
            if out.status == "accepted":
                accepted.append((ev, out, key))
                continue
            claimed.remove(ev.idempotency_key)
            if out.status == "failed":
                failed.append(key)
                deps.kv.release(ev.idempotency_key)
            else:
                deps.kv.complete(ev.idempotency_key, _record(out), ttl_s=ttl_s)
        if accepted:
            result.launch = deps.launcher.request_run("file", [o.raw_key for _, o, _ in accepted])
    except BaseException:
        for k in claimed:  # let the retry of this event do the work again
            deps.kv.release(k)
        raise
    for ev, out, key in accepted:
        out.run_id = result.launch.run_id if result.launch else None
        try:
            _delete_source(deps.store, key)  # archived in raw/ and covered by a run: the drop zone is emptied
        except Exception:  # noqa: BLE001 - leaving the file in landing/ is harmless: its claim is completed
            log.warning("could not remove the file from landing/", extra={"key": key}, exc_info=True)
        deps.kv.complete(
            ev.idempotency_key,
            _record(out) | {"launch": result.launch.status if result.launch else None},
            ttl_s=ttl_s,
        )
    if busy:
        # Fail this invocation so the event is retried: the other handler may still fail and release.
        raise AlreadyInProgress(f"another handler is processing {busy}; processed the rest: {result.as_dict()}")
    if failed:
        raise IntakeIncomplete(f"{len(failed)} file(s) left in landing/ for a retry: {result.as_dict()}")
    return result


def process_glue_state_change(change: GlueJobStateChange, deps: Deps) -> dict[str, Any]:
    if change.job_name != deps.settings.glue_job_name or not hasattr(deps.launcher, "on_job_state_change"):
        return {
            "ignored": f"job {change.job_name} is not {deps.settings.glue_job_name} (launcher {deps.launcher.name})"
        }
    return deps.launcher.on_job_state_change(change.job_run_id, change.state, change.message)
