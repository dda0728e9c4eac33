"""The model being served, the poller that swaps in a new one when ``models/latest.json`` changes, and the
re-check of the served model's files on every poll.

A candidate is served only after: its manifest's signature is valid under the signing key, its sha256
matches the manifest (and the pointer), its library versions are ones this process can honour (all three
before anything is unpickled: ``artifacts.read_verified``), its feature list is this code's
``features.FEATURE_NAMES``, and the fast scorer built from it agrees with its own ``predict_proba`` on
probe rows. Anything else is refused, logged at ERROR and counted, and the model already loaded keeps
serving; the refused pointer is tried again on a backoff (doubling from the poll interval up to
``retry_max_s``), so restoring a file recovers without a restart. The swap is one reference assignment:
a request in flight keeps the model it started with.

Every poll also re-reads the served version's manifest, signature and model file: if any no longer has
the sha256 it had when verified, that is logged at ERROR once, counted
(``fraud_api_model_integrity_failures_total``, gauge ``fraud_api_model_files_intact`` 0), and ``/ready``
says so, while the verified model in memory keeps serving. A missing pointer is reported the same way.

``problem`` is what ``/ready`` may tell anyone (a fixed phrase, no paths, versions or digests); the
details go to the log.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np

from api.fast_model import Scorer, check_agreement, compile_model
from fraud_detection import artifacts, features
from fraud_detection.storage import StorageError, Store

log = logging.getLogger("api.model")

HEADLINE_METRIC_WORDS = ("auc", "precision", "recall", "f1", "brier", "fpr", "tpr", "alert")


@dataclass(frozen=True)
class LoadedModel:
    version: str
    manifest: artifacts.Manifest
    model: Any
    scorer: Scorer
    threshold: float
    ref: dict[str, Any]  # the "model" object of every score response
    ref_json: str
    file_digests: dict[str, str] = field(default_factory=dict)  # store key -> sha256 when verified
    loaded_at: float = field(default_factory=time.time)


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric test-period metrics (``metrics["test"]`` if present, else top level) with headline names."""
    source = metrics.get("test") if isinstance(metrics.get("test"), dict) else metrics
    out: dict[str, float] = {}
    for k, v in source.items():
        if (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and any(w in k.lower() for w in HEADLINE_METRIC_WORDS)
        ):
            if np.isfinite(v):
                out[k] = float(v)
    return out


def _scrub(value: Any) -> Any:
    """Drop anything that looks like a location in our infrastructure (paths, bucket URIs)."""
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str) and ("://" in value or value.startswith(("/", "~")) or "\\" in value):
        return "<redacted>"
    return value


def public_manifest(m: artifacts.Manifest) -> dict[str, Any]:
    data = m.model_dump(mode="json", exclude={"input_files"})
    data["input_file_count"] = len(m.input_files)
    return _scrub(data)


def model_ref(m: artifacts.Manifest) -> dict[str, Any]:
    return {
        "version": m.version,
        "trained_at": m.created_at,
        "model_type": m.model_type,
        "training_data": {k: v.model_dump(mode="json") for k, v in m.training_data.items()},
        "threshold": m.threshold.value,
        "test_metrics": headline_metrics(m.metrics),
    }


def probe_rows(n: int = 256, seed: int = 0) -> np.ndarray:
    """Feature rows spanning the ranges models see: counts, amounts, ratios, times, distances."""
    rng = np.random.default_rng(seed)
    k = len(features.FEATURE_NAMES)
    X = rng.lognormal(mean=2.0, sigma=2.0, size=(n, k))
    X[: n // 4] = rng.integers(-1, 30, size=(n // 4, k))
    X[n // 4 : n // 2] *= rng.choice([-1.0, 1.0], size=(n // 2 - n // 4, k))
    return X


class ModelRejected(artifacts.ArtifactError):
    pass


NOT_PUBLISHED = "no model published yet"
REFUSED = "the published model was refused (details in the service log)"
POINTER_MISSING = "the latest-model pointer is missing from the store (details in the service log)"
FILES_CHANGED = "the served model's files no longer match what was verified (details in the service log)"


def load_candidate(
    store: Store, version: str, expected_sha256: str | None = None, *, key: bytes | None = None
) -> LoadedModel:
    """A verified, compiled model (``key``: the signing key; None: the local store's own)."""
    manifest, manifest_bytes, blob = artifacts.read_verified(store, version, key or artifacts.signing_key(store))
    if expected_sha256 is not None and manifest.model_sha256 != expected_sha256:
        raise ModelRejected(f"{artifacts.LATEST_KEY} and the manifest of {version} disagree on sha256")
    names = tuple(f.name for f in manifest.features)
    if names != features.FEATURE_NAMES:
        raise ModelRejected(f"model {version} expects features {list(names)}; this service builds a different list")
    model = joblib.load(io.BytesIO(blob))
    scorer = compile_model(model)
    try:
        check_agreement(model, scorer, probe_rows())
    except ValueError as exc:
        raise ModelRejected(f"model {version}: {exc}") from exc
    ref = model_ref(manifest)
    return LoadedModel(
        version=manifest.version,
        manifest=manifest,
        model=model,
        scorer=scorer,
        threshold=float(manifest.threshold.value),
        ref=ref,
        ref_json=json.dumps(ref, separators=(",", ":")),
        file_digests={
            artifacts.version_key(version, artifacts.MANIFEST_FILE): artifacts.sha256_hex(manifest_bytes),
            artifacts.version_key(version, manifest.model_file): manifest.model_sha256,
        },
    )


class ModelHolder:
    def __init__(
        self,
        store: Store,
        metrics=None,
        *,
        signing_key: bytes | None = None,
        retry_min_s: float = 1.0,
        retry_max_s: float = 60.0,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.signing_key = signing_key
        self.current: LoadedModel | None = None
        self.last_error: str | None = None  # the detail, for the log and tests; never in an open answer
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._seen_etag: str | None = None
        self._pointer_problem: str | None = None
        self._files_changed: str | None = None  # what changed, while it stays changed
        self._retry_at: float | None = None  # a refused pointer is tried again from then
        self._backoff_s = retry_min_s

    @property
    def ready(self) -> bool:
        return self.current is not None

    @property
    def problem(self) -> str | None:
        """What /ready may say about the model (a fixed phrase), or None when all is well."""
        if self._files_changed is not None:
            return FILES_CHANGED
        if self._pointer_problem is not None:
            return self._pointer_problem
        return None if self.current is not None else NOT_PUBLISHED

    def poll_once(self) -> bool:
        """Load the latest version if the pointer changed (or a refused one is due again), then re-check
        the served model's files; True when a new model was swapped in."""
        swapped = self._follow_pointer()
        if not swapped:
            self._recheck_served()
        return swapped

    def _follow_pointer(self) -> bool:
        try:
            info = self.store.head(artifacts.LATEST_KEY)
        except Exception as exc:  # storage hiccup: keep serving, try again next poll
            log.warning("cannot check the latest pointer", extra={"error": str(exc)})
            return False
        if info is None:
            if self.current is None:
                self.last_error = f"no {artifacts.LATEST_KEY} in the store yet"
                return False
            if self._pointer_problem != POINTER_MISSING:
                self._pointer_problem = POINTER_MISSING
                self._seen_etag = None  # a pointer written back is read again, whatever its ETag
                log.error(
                    "the latest-model pointer is gone; keeping the served model",
                    extra={"pointer": artifacts.LATEST_KEY, "serving": self.current.version},
                )
            return False
        due = self._retry_at is not None and time.monotonic() >= self._retry_at
        if info.etag == self._seen_etag and not due:
            return False
        self._seen_etag = info.etag
        try:
            pointer = artifacts.read_latest(self.store)
        except Exception as exc:
            return self._refuse("?", f"unreadable pointer: {exc}")
        if pointer is None:
            return False
        if self.current is not None and pointer.version == self.current.version:
            if pointer.model_sha256 != self.current.manifest.model_sha256:
                return self._refuse(pointer.version, "the pointer's sha256 differs from the served manifest's")
            self._accepted()  # back to the version being served (e.g. a restored pointer)
            return False
        started = time.monotonic()
        try:
            candidate = load_candidate(self.store, pointer.version, pointer.model_sha256, key=self.signing_key)
        except Exception as exc:  # artifacts.ArtifactError and anything unpickling may raise
            return self._refuse(pointer.version, f"{type(exc).__name__}: {exc}")
        previous = self.current.version if self.current else None
        self.current = candidate
        self._files_changed = None
        self._accepted()
        if self.metrics is not None:
            self.metrics.reloads.labels("loaded").inc()
            self.metrics.set_model(candidate.version, candidate.manifest.model_type, candidate.scorer.kind)
            self.metrics.files_intact.set(1)
        log.info(
            "model loaded",
            extra={
                "model_version": candidate.version,
                "previous_version": previous,
                "scorer": candidate.scorer.kind,
                "load_s": round(time.monotonic() - started, 3),
            },
        )
        return True

    def _accepted(self) -> None:
        self.last_error = None
        self._pointer_problem = None
        self._retry_at = None
        self._backoff_s = self.retry_min_s

    def _refuse(self, version: str, reason: str) -> bool:
        self.last_error = f"refused model {version}: {reason}"
        self._pointer_problem = REFUSED
        self._retry_at = time.monotonic() + self._backoff_s
        retry_in = self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self.retry_max_s)
        if self.metrics is not None:
            self.metrics.reloads.labels("refused").inc()
        log.error(
            "model refused; keeping the current one",
            extra={
                "model_version": version,
                "reason": reason,
                "serving": self.current.version if self.current else None,
                "retry_in_s": round(retry_in, 3),
            },
        )
        return False

    def _recheck_served(self) -> None:
        """Re-hash the served version's manifest and model file; report a change once, and its repair."""
        lm = self.current
        if lm is None:
            return
        changed = []
        for key, digest in lm.file_digests.items():
            try:
                now = artifacts.sha256_hex(self.store.read_bytes(key))
            except StorageError:
                now = "missing"
            except Exception as exc:  # a storage hiccup is not tampering: try again next poll
                log.warning("cannot re-check the served model's files", extra={"error": str(exc)})
                return
            if now != digest:
                changed.append(f"{key}: {'missing' if now == 'missing' else 'sha256 ' + now[:12] + '…'}")
        if changed:
            detail = "; ".join(changed)
            if self._files_changed != detail:
                self._files_changed = detail
                if self.metrics is not None:
                    self.metrics.integrity_failures.inc()
                    self.metrics.files_intact.set(0)
                log.error(
                    "the served model's files changed in the store; the verified model in memory keeps serving",
                    extra={"model_version": lm.version, "changed": detail},
                )
        elif self._files_changed is not None:
            self._files_changed = None
            if self.metrics is not None:
                self.metrics.files_intact.set(1)
            log.info("the served model's files match again", extra={"model_version": lm.version})

    async def run_poller(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                if await asyncio.to_thread(self.poll_once):
                    settle_heap()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("model poll failed")


def settle_heap() -> None:
    """Move what is alive now (libraries, the model) out of the garbage collector's view.

    The service's heap is mostly long-lived objects (scikit-learn, scipy, numba, the model): a full
    collection walks all of them (figures: docs/benchmarks.md, "Figures behind the code")
    and lands on whichever request triggered it. After
    ``gc.freeze`` collections only look at objects made since, so they stay short. Called after start-up
    and after each model swap: unfreezing first lets that one full collection free the previous model.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
