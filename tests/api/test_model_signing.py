"""Loading a model cannot run code: a crafted pickle whose sha256 matches its manifest and pointer runs
nothing unless its manifest is signed with the model signing key.

The payload creates a marker file when unpickled. The first test shows that it does run when loaded
(so its absence later means something); the others show that neither the API nor ``artifacts.load_model``
unpickles it without a valid signature.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import joblib
import pytest
from api_support import make_settings
from fastapi.testclient import TestClient

from api.main import create_app
from fraud_detection import artifacts


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: code chosen by whoever wrote the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _crafted_version(store, marker: Path, *, sign_with: bytes | None, copy_signature: bool = False) -> str:
    """A version whose model file is the payload, with a manifest whose sha256 matches it, published."""
    legit = artifacts.read_latest(store)
    blob = pickle.dumps(_Payload(marker))
    manifest = artifacts.read_manifest(store, legit.version)
    version = artifacts.new_version(blob)
    manifest = manifest.model_copy(update={"version": version, "model_sha256": artifacts.sha256_hex(blob)})
    data = manifest.model_dump_json(indent=2).encode()
    store.write_bytes(artifacts.version_key(version, artifacts.MODEL_FILE), blob)
    if sign_with is not None:
        store.write_bytes(artifacts.version_key(version, artifacts.SIGNATURE_FILE), artifacts.sign(data, sign_with))
    elif copy_signature:  # a valid signature, of another manifest
        sig = store.read_bytes(artifacts.version_key(legit.version, artifacts.SIGNATURE_FILE))
        store.write_bytes(artifacts.version_key(version, artifacts.SIGNATURE_FILE), sig)
    store.write_bytes(artifacts.version_key(version, artifacts.MANIFEST_FILE), data)
    artifacts.publish_latest(store, manifest)
    return version


def test_the_payload_runs_when_unpickled(tmp_path):
    marker = tmp_path / "ran"
    joblib.load(io.BytesIO(pickle.dumps(_Payload(marker))))
    assert marker.exists()


@pytest.mark.parametrize(
    ("sign_with", "copy_signature"),
    [(None, False), (b"not the signing key", False), (None, True)],
    ids=["unsigned", "wrong-key", "signature-of-another-manifest"],
)
def test_crafted_pickle_with_valid_sha256_runs_nothing(store, api_key, tmp_path, sign_with, copy_signature):
    marker = tmp_path / "ran"
    with TestClient(create_app(make_settings(store, api_key[1]), store)) as c:
        served = c.get("/ready").json()["model_version"]
        version = _crafted_version(store, marker, sign_with=sign_with, copy_signature=copy_signature)
        holder = c.app.state.holder
        holder.poll_once()
        assert "signature" in (holder.last_error or "") or "not signed" in (holder.last_error or "")
        assert c.get("/ready").json()["model_version"] == served
        with pytest.raises(artifacts.ArtifactError):
            artifacts.load_model(store, version)
        with pytest.raises(artifacts.ArtifactError):
            artifacts.load_latest(store)
    assert not marker.exists()


def test_only_the_signature_stood_in_the_way(store, tmp_path):
    """The same crafted version, signed with the store's key, is unpickled: the check above is what held."""
    marker = tmp_path / "ran"
    version = _crafted_version(store, marker, sign_with=artifacts.signing_key(store))
    _, loaded = artifacts.load_model(store, version)  # a file object, not a model: the payload ran
    loaded.close()
    assert marker.exists()


def test_a_non_local_store_needs_a_configured_key(tmp_path):
    class RemoteStore:  # any store that is not a local folder
        pass

    with pytest.raises(artifacts.MissingSigningKeyError, match="FRAUD_MODEL_SIGNING_KEY"):
        artifacts.signing_key(RemoteStore())  # type: ignore[arg-type]
    assert artifacts.signing_key(RemoteStore(), "k") == b"k"  # type: ignore[arg-type]
