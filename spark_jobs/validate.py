"""Validate each input file against the data contract with great-expectations, on the Spark DataFrame.

The suite is ``fraud_detection.contract.expectations()``. A file that fails goes to ``quarantine/`` with
``<file>.reason.json`` naming each failed expectation and its counts; Data Docs (HTML) for every file
validated in the run are written under ``reports/validation/<run_id>/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraud_detection import contract, file_names, layout
from fraud_detection.logs import redact_card_numbers, redact_digit_runs
from fraud_detection.storage import StorageError, Store

log = logging.getLogger(__name__)
QUARANTINE = layout.prefix(layout.QUARANTINE)


@dataclass
class FileValidation:
    file: str
    success: bool
    rows: int
    failed: list[dict[str, Any]] = field(default_factory=list)

    def reason(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "failed_expectations": self.failed}


class ContractValidator:
    """One great-expectations context per run; ``validate`` once per file."""

    def __init__(self, run_id: str, result_format: str = "SUMMARY") -> None:
        import great_expectations as gx

        self._gx = gx
        self.run_id = run_id
        self.docs_dir = Path(tempfile.mkdtemp(prefix="fraud-data-docs-"))
        self.context = gx.get_context(mode="ephemeral")
        self.context.add_data_docs_site(
            site_name="reports",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(self.docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        self.suite = self.context.suites.add(gx.ExpectationSuite(name="transactions_contract"))
        for e in contract.expectations():
            self.suite.add_expectation(e)
        self.asset = self.context.data_sources.add_spark(name="spark").add_dataframe_asset(name="transactions")
        self._n = 0
        self._result_format = {"result_format": result_format, "partial_unexpected_count": 5}

    def validate(self, df, file_name: str) -> FileValidation:
        gx = self._gx
        self._n += 1
        batch = self.asset.add_batch_definition_whole_dataframe(f"file_{self._n}")
        vd = self.context.validation_definitions.add(
            gx.ValidationDefinition(
                name=f"{self._n:03d}_{redact_card_numbers(file_name)}", data=batch, suite=self.suite
            )
        )
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=f"checkpoint_{self._n}",
                validation_definitions=[vd],
                actions=[],  # Data Docs are built below, from the scrubbed result
                result_format=self._result_format,
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": df})
        result_key, vr = next(iter(result.run_results.items()))
        rows = df.count()  # cached by the caller: cheap
        failed = self._failed(vr)  # before the scrub: examples of non-personal columns for the reason file
        scrub_values(vr)
        self._publish(result_key, vr)
        return FileValidation(file=file_name, success=bool(vr.success), rows=rows, failed=failed)

    def _publish(self, result_key, vr) -> None:
        """Data Docs of one validation, rendered from the scrubbed result (the stored one replaced)."""
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        self.context.validation_results_store.set(result_key, vr)
        self.context.build_data_docs(
            site_names=["reports"],
            resource_identifiers=[result_key, ExpectationSuiteIdentifier(name=self.suite.name)],
        )

    @staticmethod
    def _failed(vr) -> list[dict[str, Any]]:
        failed = []
        for r in vr.results:
            if r.success:
                continue
            cfg = r.expectation_config
            res = r.result or {}
            failed.append(
                {
                    "expectation": cfg.type,
                    "column": cfg.kwargs.get("column"),
                    "kwargs": {k: v for k, v in cfg.kwargs.items() if k not in ("column", "batch_id")},
                    "unexpected_count": res.get("unexpected_count"),
                    "unexpected_percent": res.get("unexpected_percent"),
                    "element_count": res.get("element_count"),
                    "partial_unexpected_list": _safe_examples(cfg.kwargs.get("column"), res),
                    "exception": (r.exception_info or {}).get("exception_message")
                    if isinstance(r.exception_info, dict)
                    else None,
                }
            )
        return _redacted(failed)

    def publish_docs(self, store: Store, prefix: str) -> str:
        """Copy the Data Docs site into the store; returns the key of its index.html."""
        for path in sorted(self.docs_dir.rglob("*")):
            if path.is_file():
                store.upload(path, f"{prefix}/{path.relative_to(self.docs_dir).as_posix()}")
        return f"{prefix}/index.html"


def _base_column(column: str | None) -> str | None:
    return (
        column[: -len(contract.CAST_CHECK_SUFFIX)] if column and column.endswith(contract.CAST_CHECK_SUFFIX) else column
    )


def _safe_examples(column: str | None, result: dict[str, Any]) -> list[Any]:
    """A few offending values, except for personal columns (their count only)."""
    if _base_column(column) in contract.PERSONAL_COLUMNS:
        return ["<redacted: personal column>"]
    return [
        v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
        for v in (result.get("partial_unexpected_list") or [])[:5]
    ]


# what a result holds of the data itself (great-expectations 1.x result keys)
VALUE_KEYS = (
    "partial_unexpected_list",
    "partial_unexpected_counts",
    "partial_unexpected_index_list",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_index_query",
    "details",
)


def redact_report_text(text: str) -> str:
    """A report holds no ids to keep: a card-length run is redacted inside a hex word too."""
    return redact_digit_runs(text)


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    text = str(value)
    safe = redact_report_text(text)
    return value if safe == text else safe


def scrub_values(vr) -> None:
    """In place: no value of a personal column (counts stay), card-like digits redacted everywhere else,
    exception messages included (a cast error quotes the value)."""
    for r in vr.results:
        column = _base_column(r.expectation_config.kwargs.get("column"))
        res = r.result if isinstance(r.result, dict) else {}
        for key in VALUE_KEYS:
            if key in res:
                res[key] = [] if column in contract.PERSONAL_COLUMNS else _redacted(res[key])
        if "observed_value" in res:
            res["observed_value"] = None if column in contract.PERSONAL_COLUMNS else _redacted(res["observed_value"])
        if isinstance(r.exception_info, dict):
            r.exception_info = _redacted(r.exception_info)


def quarantine(store: Store, source_uri: str, name: str, reason: dict[str, Any]) -> str:
    """Copy a rejected file to quarantine/ with ``<name>.reason.json``; returns the quarantined key.

    A file another file's copy holds the name of gets its own (``<stem>.<tag>.<ext>``); the same file
    rejected again by a later run (it stays in raw/) keeps its one copy. A file that cannot be copied
    (unreadable, a link, a FIFO) leaves a note instead of its bytes."""
    ident = _identity(source_uri)
    tag = hashlib.sha256(f"{source_uri}\n{ident}".encode()).hexdigest()[:12]
    rel = file_names.stored_name(name)
    for cand in (rel, file_names.with_tag(rel, tag)):
        prior = _reason_of(store, f"{QUARANTINE}{cand}")
        if prior is not None and prior.get("source_identity") == ident and prior.get("source") == _shown(source_uri):
            return f"{QUARANTINE}{cand}"
    key = file_names.free_key(
        QUARANTINE, rel, tag, lambda k: store.head(k) is not None or store.head(k + ".reason.json") is not None
    )
    reason = _redacted(reason)
    reason |= {"source": _shown(source_uri), "source_identity": ident}
    try:
        _copy_into_store(store, source_uri, key)
    except Exception as exc:  # noqa: BLE001 - the reason says it; the run goes on
        reason["copy_error"] = redact_card_numbers(f"{type(exc).__name__}: {exc}")
        store.write_bytes(key, f"could not be copied here: {reason['copy_error']}\n".encode())
    store.write_bytes(f"{key}.reason.json", json.dumps(reason, indent=2, default=str).encode())
    log.warning("file quarantined", extra={"file": name, "quarantine_key": key, "reason": reason.get("error")})
    return key


def _shown(uri: str) -> str:
    return redact_card_numbers(uri)


def _identity(source_uri: str) -> str:
    """Size and change time (local) or ETag (S3): the same file rejected twice is quarantined once."""
    try:
        if source_uri.startswith("s3://"):
            from urllib.parse import urlparse

            from spark_jobs.extract import _s3_client

            u = urlparse(source_uri)
            return _s3_client().head_object(Bucket=u.netloc, Key=u.path.lstrip("/"))["ETag"].strip('"')
        st = os.lstat(source_uri)
        return f"{st.st_size}-{st.st_mtime_ns}"
    except Exception:  # noqa: BLE001 - unreadable: every attempt gets its own copy
        return f"unknown-{time.time_ns()}"


def _reason_of(store: Store, key: str) -> dict[str, Any] | None:
    try:
        return json.loads(store.read_bytes(f"{key}.reason.json")) if store.head(f"{key}.reason.json") else None
    except (ValueError, StorageError):
        return None


def _copy_into_store(store: Store, source_uri: str, key: str) -> None:
    if source_uri.startswith("s3://"):
        from urllib.parse import urlparse

        from fraud_detection.storage import S3Store

        u = urlparse(source_uri)
        if isinstance(store, S3Store):
            store.client.copy_object(
                Bucket=store.bucket,
                Key=store._k(key),
                CopySource={"Bucket": u.netloc, "Key": u.path.lstrip("/")},
                **store.encryption_args(key),
            )
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "f"
            from spark_jobs.extract import _s3_client

            _s3_client().download_file(u.netloc, u.path.lstrip("/"), str(local))
            store.upload(local, key)
        return
    if not stat.S_ISREG(os.lstat(source_uri).st_mode):
        raise contract.ContractError("not a regular file (a link, FIFO or folder): not copied")
    store.upload(Path(source_uri), key)
