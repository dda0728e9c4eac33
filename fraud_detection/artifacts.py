"""The model artifact format: save, load, manifest, sha256 check, and the ``latest`` pointer.

Layout in the store::

    models/<version>/model.joblib     the fitted scikit-learn estimator (features -> probability)
    models/<version>/metrics.json     evaluation on the held-out period
    models/<version>/report.html      human-readable evaluation
    models/<version>/manifest.sig     HMAC-SHA256 of manifest.json's bytes under the model signing key
    models/<version>/manifest.json    everything needed to trust and use model.joblib (written last)
    models/latest.json                the pointer the API follows (one atomic write, written last)

A model file is a pickle, and unpickling runs whatever code the file names. So it is only ever unpickled
after: manifest.json's bytes carry a valid signature (checked before the manifest is even parsed), the
model file's sha256 matches the signed manifest, and the manifest's library versions are ones this
process can honour. A sha256 alone proves that a file matches its manifest, not who wrote both; the
signature proves that whoever wrote the manifest held the signing key (``signing_key``: from settings /
Secrets Manager, never stored in the bucket on AWS).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import platform
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
import sklearn
from pydantic import BaseModel, Field

from fraud_detection import __version__
from fraud_detection.layout import LATEST_POINTER, MODELS, SECRETS
from fraud_detection.local_secrets import local_secret
from fraud_detection.storage import LocalStore, StorageError, Store

LATEST_KEY = LATEST_POINTER
MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
SIGNING_KEY_FILE = f"{SECRETS}/model_signing_key"  # a local store's own key (embedded mode only)
_SIG_PREFIX = b"hmac-sha256:"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"


class ArtifactError(RuntimeError):
    """An artifact that must not be used: missing, tampered with, or built by incompatible libraries."""


class MissingSigningKeyError(ArtifactError):
    """No model signing key configured for a store that cannot hold one of its own."""


def signing_key(store: Store, configured: Any = None) -> bytes:
    """The key that signs and checks manifests: ``configured`` (settings.model_signing_key, a SecretStr or
    str) if set; else, on a local store, a random key created once under <store>/secrets/ (so embedded mode
    needs no setup: whoever can write that folder can sign, so set the key outside it to guard against
    them); else MissingSigningKeyError."""
    if configured is not None:
        text = configured.get_secret_value() if hasattr(configured, "get_secret_value") else str(configured)
        if not text:
            raise MissingSigningKeyError("the model signing key is empty")
        return text.encode()
    if isinstance(store, LocalStore):
        return local_secret(store, SIGNING_KEY_FILE)
    raise MissingSigningKeyError(
        "FRAUD_MODEL_SIGNING_KEY must be set for a non-local store (inject it from Secrets Manager)"
    )


def sign(data: bytes, key: bytes) -> bytes:
    return _SIG_PREFIX + hmac.new(key, data, hashlib.sha256).hexdigest().encode()


def signature_valid(data: bytes, signature: bytes, key: bytes) -> bool:
    return hmac.compare_digest(sign(data, key), signature.strip())


class FeatureSpec(BaseModel):
    name: str
    dtype: str = "float64"
    kind: str
    description: str = ""


def feature_specs() -> list[FeatureSpec]:
    """The manifest's feature list for a model trained by this code: ``features.FEATURES``, in order."""
    from fraud_detection.features import FEATURES

    return [FeatureSpec(name=f.name, kind=f.kind, description=f.description) for f in FEATURES]


class SplitCounts(BaseModel):
    rows: int
    frauds: int
    start: str | None = None
    end: str | None = None


class Threshold(BaseModel):
    value: float
    method: str


class Promotion(BaseModel):
    promoted: bool
    reason: str
    champion_version: str | None = None
    decided_at: str | None = None


class Manifest(BaseModel):
    version: str
    created_at: str
    code_version: str
    model_type: str
    training_data: dict[str, SplitCounts] = Field(description="train / validation / test splits")
    training_sample: dict[str, Any] = Field(default_factory=dict, description="rows collected to the driver")
    input_files: list[str] = Field(default_factory=list)
    features: list[FeatureSpec]
    threshold: Threshold
    metrics: dict[str, Any]
    libraries: dict[str, str]
    model_file: str = MODEL_FILE
    model_sha256: str
    promotion: Promotion | None = None


class LatestPointer(BaseModel):
    version: str
    manifest: str
    model_sha256: str
    published_at: str


def library_versions() -> dict[str, str]:
    return {
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "python": platform.python_version(),
    }


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def model_bytes(model: Any) -> bytes:
    buf = io.BytesIO()
    joblib.dump(model, buf, compress=3)
    return buf.getvalue()


def new_version(model_blob: bytes, now: datetime | None = None) -> str:
    """Sortable version id: UTC timestamp + short content hash, e.g. ``20261121T120501Z-3fa2c1d0``."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%S')}{now.microsecond // 1000:03d}Z-{sha256_hex(model_blob)[:8]}"


def version_key(version: str, name: str) -> str:
    if "/" in version or ".." in version:
        raise ArtifactError(f"invalid version {version!r}")
    return f"{MODELS}/{version}/{name}"


def save_artifact(
    store: Store,
    *,
    version: str,
    model_blob: bytes,
    manifest: Manifest,
    metrics: dict[str, Any],
    report_html: str,
    key: bytes | None = None,
) -> None:
    """Write a version's files; the manifest goes last so a half-written version is never trusted.
    ``key``: the signing key (``signing_key``); None: the local store's own."""
    if manifest.model_sha256 != sha256_hex(model_blob):
        raise ArtifactError("manifest sha256 does not match the model bytes")
    store.write_bytes(version_key(version, MODEL_FILE), model_blob)
    store.write_bytes(version_key(version, METRICS_FILE), json.dumps(metrics, indent=2).encode())
    store.write_bytes(version_key(version, REPORT_FILE), report_html.encode())
    write_manifest(store, manifest, key=key)


def write_manifest(store: Store, manifest: Manifest, *, key: bytes | None = None) -> None:
    """The manifest's signature, then the manifest (a reader between the two finds them disagreeing and
    refuses the version until both are written)."""
    data = manifest.model_dump_json(indent=2).encode()
    store.write_bytes(version_key(manifest.version, SIGNATURE_FILE), sign(data, key or signing_key(store)))
    store.write_bytes(version_key(manifest.version, MANIFEST_FILE), data)


def read_manifest(store: Store, version: str) -> Manifest:
    """A version's manifest, unverified (for display: loading goes through ``read_signed_manifest``)."""
    try:
        return Manifest.model_validate_json(store.read_bytes(version_key(version, MANIFEST_FILE)))
    except StorageError as exc:
        raise ArtifactError(f"no manifest for version {version}") from exc
    except ValueError as exc:
        raise ArtifactError(f"unreadable manifest for version {version}: {exc}") from exc


def read_signed_manifest(store: Store, version: str, key: bytes) -> tuple[Manifest, bytes]:
    """A version's manifest and its bytes, after its signature is checked against the raw bytes (nothing
    is parsed before that)."""
    try:
        data = store.read_bytes(version_key(version, MANIFEST_FILE))
    except StorageError as exc:
        raise ArtifactError(f"no manifest for version {version}") from exc
    try:
        signature = store.read_bytes(version_key(version, SIGNATURE_FILE))
    except StorageError as exc:
        raise ArtifactError(f"manifest of version {version} is not signed") from exc
    if not signature_valid(data, signature, key):
        raise ArtifactError(f"manifest signature of version {version} is not valid under the signing key")
    try:
        return Manifest.model_validate_json(data), data
    except ValueError as exc:
        raise ArtifactError(f"unreadable manifest for version {version}: {exc}") from exc


def list_versions(store: Store) -> list[str]:
    versions = {o.key.split("/")[1] for o in store.list(f"{MODELS}/") if o.key.endswith(f"/{MANIFEST_FILE}")}
    return sorted(versions)


def publish_latest(store: Store, manifest: Manifest) -> LatestPointer:
    """Point ``latest`` at a version: one atomic write (rename locally, single PUT on S3)."""
    pointer = LatestPointer(
        version=manifest.version,
        manifest=version_key(manifest.version, MANIFEST_FILE),
        model_sha256=manifest.model_sha256,
        published_at=utc_now(),
    )
    store.write_bytes(LATEST_KEY, pointer.model_dump_json(indent=2).encode())
    return pointer


def read_latest(store: Store) -> LatestPointer | None:
    if store.head(LATEST_KEY) is None:
        return None
    try:
        return LatestPointer.model_validate_json(store.read_bytes(LATEST_KEY))
    except ValueError as exc:
        raise ArtifactError(f"unreadable {LATEST_KEY}: {exc}") from exc


def check_compatible(manifest: Manifest) -> None:
    """Refuse artifacts pickled by a scikit-learn / numpy this process cannot honour."""
    ours = library_versions()
    for lib, exact_minor in (("scikit-learn", True), ("numpy", False)):
        theirs = manifest.libraries.get(lib)
        if theirs is None:
            raise ArtifactError(f"manifest names no {lib} version")
        a, b = theirs.split("."), ours[lib].split(".")
        same = a[:2] == b[:2] if exact_minor else a[0] == b[0]
        if not same:
            raise ArtifactError(f"model built with {lib} {theirs}; this process has {ours[lib]}")


def load_model(store: Store, version: str, key: bytes | None = None) -> tuple[Manifest, Any]:
    """Load a version: signature, library versions and sha256 checked before the model is unpickled.
    ``key``: the signing key; None: the local store's own."""
    manifest, _, blob = read_verified(store, version, key or signing_key(store))
    return manifest, joblib.load(io.BytesIO(blob))


def read_verified(store: Store, version: str, key: bytes) -> tuple[Manifest, bytes, bytes]:
    """A version's signed manifest, its bytes, and the model file's bytes that match it; nothing
    deserialised but the manifest, and that only after its signature was checked."""
    manifest, manifest_bytes = read_signed_manifest(store, version, key)
    check_compatible(manifest)
    try:
        blob = store.read_bytes(version_key(version, manifest.model_file))
    except StorageError as exc:
        raise ArtifactError(f"model file missing for version {version}") from exc
    digest = sha256_hex(blob)
    if digest != manifest.model_sha256:
        raise ArtifactError(
            f"sha256 mismatch for version {version}: manifest {manifest.model_sha256[:12]}…, file {digest[:12]}…"
        )
    return manifest, manifest_bytes, blob


def load_latest(store: Store, key: bytes | None = None) -> tuple[Manifest, Any]:
    pointer = read_latest(store)
    if pointer is None:
        raise ArtifactError(f"no {LATEST_KEY} in the store")
    manifest, model = load_model(store, pointer.version, key)
    if manifest.model_sha256 != pointer.model_sha256:
        raise ArtifactError(f"{LATEST_KEY} and manifest of {pointer.version} disagree on sha256")
    return manifest, model


def code_version() -> str:
    return __version__
