"""The model being served, and the poller that swaps in a new one when ``models/latest.json`` changes.

A candidate is served only after: its sha256 matches the manifest (and the pointer), its library
versions are ones this process can honour (``artifacts.load_model``), its feature list is this code's
``features.FEATURE_NAMES``, and the fast scorer built from it agrees with its own ``predict_proba`` on
probe rows. Anything else is refused and logged, and the model already loaded keeps serving. The swap
is one reference assignment: a request in flight keeps the model it started with.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api.fast_model import Scorer, check_agreement, compile_model
from fraud_detection import artifacts, features
from fraud_detection.storage import Store

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


def load_candidate(store: Store, version: str, expected_sha256: str | None = None) -> LoadedModel:
    manifest, model = artifacts.load_model(store, version)
    if expected_sha256 is not None and manifest.model_sha256 != expected_sha256:
        raise ModelRejected(f"{artifacts.LATEST_KEY} and the manifest of {version} disagree on sha256")
    names = tuple(f.name for f in manifest.features)
    if names != features.FEATURE_NAMES:
        raise ModelRejected(f"model {version} expects features {list(names)}; this service builds a different list")
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
    )


class ModelHolder:
    def __init__(self, store: Store, metrics=None) -> None:
        self.store = store
        self.metrics = metrics
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self._seen_etag: str | None = None

    @property
    def ready(self) -> bool:
        return self.current is not None

    def poll_once(self) -> bool:
        """Load the latest version if the pointer changed; True when a new model was swapped in."""
        try:
            info = self.store.head(artifacts.LATEST_KEY)
        except Exception as exc:  # storage hiccup: keep serving, try again next poll
            log.warning("cannot check the latest pointer", extra={"error": str(exc)})
            return False
        if info is None:
            if self.current is None:
                self.last_error = f"no {artifacts.LATEST_KEY} in the store yet"
            return False
        if info.etag == self._seen_etag:
            return False
        self._seen_etag = info.etag
        try:
            pointer = artifacts.read_latest(self.store)
        except Exception as exc:
            return self._refuse("?", f"unreadable pointer: {exc}")
        if pointer is None or (self.current is not None and pointer.version == self.current.version):
            return False
        started = time.monotonic()
        try:
            candidate = load_candidate(self.store, pointer.version, pointer.model_sha256)
        except Exception as exc:  # artifacts.ArtifactError and anything unpickling may raise
            return self._refuse(pointer.version, f"{type(exc).__name__}: {exc}")
        previous = self.current.version if self.current else None
        self.current = candidate
        self.last_error = None
        if self.metrics is not None:
            self.metrics.reloads.labels("loaded").inc()
            self.metrics.set_model(candidate.version, candidate.manifest.model_type, candidate.scorer.kind)
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

    def _refuse(self, version: str, reason: str) -> bool:
        self.last_error = f"refused model {version}: {reason}"
        if self.metrics is not None:
            self.metrics.reloads.labels("refused").inc()
        log.error(
            "model refused; keeping the current one",
            extra={
                "model_version": version,
                "reason": reason,
                "serving": self.current.version if self.current else None,
            },
        )
        return False

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
    collection walks all of them, ~100 ms here, and lands on whichever request triggered it. After
    ``gc.freeze`` collections only look at objects made since, so they stay short. Called after start-up
    and after each model swap: unfreezing first lets that one full collection free the previous model.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
