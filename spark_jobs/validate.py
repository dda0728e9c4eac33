"""Validate each input file against the data contract with great-expectations, on the Spark DataFrame.

The suite is ``fraud_detection.contract.expectations()``. A file that fails goes to ``quarantine/`` with
``<file>.reason.json`` naming each failed expectation and its counts; Data Docs (HTML) for every file
validated in the run are written under ``reports/validation/<run_id>/``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraud_detection import contract
from fraud_detection.storage import Store

log = logging.getLogger(__name__)


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
        from great_expectations.checkpoint import UpdateDataDocsAction

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
        self._docs_action = UpdateDataDocsAction(name="data_docs", site_names=["reports"])
        self._n = 0
        self._result_format = {"result_format": result_format, "partial_unexpected_count": 5}

    def validate(self, df, file_name: str) -> FileValidation:
        gx = self._gx
        self._n += 1
        batch = self.asset.add_batch_definition_whole_dataframe(f"file_{self._n}")
        vd = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{self._n:03d}_{file_name}", data=batch, suite=self.suite)
        )
        checkpoint = self.context.checkpoints.add(
            gx.Checkpoint(
                name=f"checkpoint_{self._n}",
                validation_definitions=[vd],
                actions=[self._docs_action],
                result_format=self._result_format,
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": df})
        vr = next(iter(result.run_results.values()))
        rows = df.count()  # cached by the caller: cheap
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
        return FileValidation(file=file_name, success=bool(vr.success), rows=rows, failed=failed)

    def publish_docs(self, store: Store, prefix: str) -> str:
        """Copy the Data Docs site into the store; returns the key of its index.html."""
        for path in sorted(self.docs_dir.rglob("*")):
            if path.is_file():
                store.upload(path, f"{prefix}/{path.relative_to(self.docs_dir).as_posix()}")
        return f"{prefix}/index.html"


def _safe_examples(column: str | None, result: dict[str, Any]) -> list[Any]:
    """A few offending values, except for PII columns (card numbers never leave in a reason file)."""
    if column and column in contract.BY_NAME and contract.BY_NAME[column].pii:
        return ["<redacted: PII column>"]
    return [
        v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
        for v in (result.get("partial_unexpected_list") or [])[:5]
    ]


def quarantine(store: Store, source_uri: str, name: str, reason: dict[str, Any]) -> str:
    """Copy a rejected file to quarantine/ with ``<name>.reason.json``; returns the quarantined key."""
    key = f"quarantine/{name}"
    _copy_into_store(store, source_uri, key)
    store.write_bytes(f"{key}.reason.json", json.dumps(reason, indent=2, default=str).encode())
    log.warning("file quarantined", extra={"file": name, "quarantine_key": key, "reason": reason.get("error")})
    return key


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
    store.upload(Path(source_uri), key)
