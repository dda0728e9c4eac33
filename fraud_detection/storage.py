"""One URI-based storage layer: local folders (embedded default) and ``s3://`` (AWS).

Keys are ``/``-separated and relative to the store root, so the bucket layout is the same in both
modes (``landing/``, ``raw/``, ``quarantine/``, ``curated/``, ``features/``, ``models/``, ``reports/``).
Spark gets ``spark_uri(key)``: an absolute local path here, ``s3://`` on Glue.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from fraud_detection import layout


class StorageError(RuntimeError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # content tag: S3 ETag, or mtime_ns+size locally (cheap change detection)


class Store(Protocol):
    root_uri: str

    def uri(self, key: str) -> str: ...
    def spark_uri(self, key: str) -> str: ...
    def exists(self, key: str) -> bool: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def list(self, prefix: str) -> list[ObjectInfo]: ...
    def copy(self, src_key: str, dst_key: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def download(self, key: str, local_path: Path) -> None: ...
    def upload(self, local_path: Path, key: str) -> None: ...
    def local_dir(self, key: str) -> Path | None: ...


def _clean(key: str) -> str:
    """A key relative to the store root. ``/`` separates; a backslash is an ordinary character of a name
    (legal in S3 keys and POSIX file names), except where the OS itself treats it as a separator."""
    if os.sep != "/" or (os.altsep and os.altsep != "/"):
        key = key.replace("\\", "/")
    key = key.lstrip("/")
    if any(part == ".." for part in key.split("/")):
        raise StorageError(f"key must not contain '..': {key!r}")
    return key


class LocalStore:
    """A folder standing in for the bucket. Writes are atomic (temp file + rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / _clean(key)

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def spark_uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def local_dir(self, key: str) -> Path | None:
        return self.path(key)

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as exc:
            raise StorageError(f"not found: {self.uri(key)}") from exc

    def write_bytes(self, key: str, data: bytes) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def head(self, key: str) -> ObjectInfo | None:
        p = self.path(key)
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        if not p.is_file():
            return None
        return ObjectInfo(_clean(key), st.st_size, f"{st.st_mtime_ns}-{st.st_size}")

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.path(prefix)
        if base.is_file():
            files: Iterator[Path] = iter([base])
        elif base.is_dir():
            files = (p for p in base.rglob("*") if p.is_file())
        else:
            return []
        out = []
        for p in files:
            if p.name.startswith("."):
                continue
            st = p.stat()
            out.append(ObjectInfo(p.relative_to(self.root).as_posix(), st.st_size, f"{st.st_mtime_ns}-{st.st_size}"))
        return sorted(out, key=lambda o: o.key)

    def copy(self, src_key: str, dst_key: str) -> None:
        dst = self.path(dst_key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.copy.tmp")
        shutil.copyfile(self.path(src_key), tmp)
        os.replace(tmp, dst)

    def delete(self, key: str) -> None:
        p = self.path(key)
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)

    def download(self, key: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path(key), local_path)

    def upload(self, local_path: Path, key: str) -> None:
        dst = self.path(key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.upload.tmp")
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, dst)


# Prefixes holding the input files as received, full card numbers included (see DESIGN's bucket layout).
SENSITIVE_PREFIXES = tuple(layout.prefix(f) for f in layout.SENSITIVE)


class S3Store:
    """An S3 bucket (optionally under a prefix). A single PUT is atomic, which the pointer relies on.

    With ``kms_key_id``, every write under ``SENSITIVE_PREFIXES`` asks for SSE-KMS with that key (the
    stack's data key, which only the intake and training roles may use; its bucket policy refuses other
    writes there). Everything else keeps the bucket's default encryption.
    """

    def __init__(
        self, root_uri: str, endpoint_url: str | None = None, region: str = "us-east-1", kms_key_id: str | None = None
    ) -> None:
        import boto3

        parsed = urlparse(root_uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageError(f"not an s3:// URI: {root_uri!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.root_uri = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)
        self.kms_key_id = kms_key_id

    def encryption_args(self, key: str) -> dict[str, str]:
        """Extra PutObject / CopyObject / upload arguments for ``key`` (store-relative)."""
        if self.kms_key_id and _clean(key).startswith(SENSITIVE_PREFIXES):
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {}

    def _k(self, key: str) -> str:
        key = _clean(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._k(key)}"

    def spark_uri(self, key: str) -> str:
        return self.uri(key)

    def local_dir(self, key: str) -> Path | None:
        return None

    def exists(self, key: str) -> bool:
        return self.head(key) is not None or bool(self.list(key))

    def read_bytes(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise StorageError(f"not found: {self.uri(key)}") from exc
        except ClientError as exc:
            # A missing key answers 403 to a role that may list only some prefixes (see head()).
            code = exc.response.get("Error", {}).get("Code")
            if code in ("403", "AccessDenied", "Forbidden") and not self._listed(key):
                raise StorageError(f"not found: {self.uri(key)}") from exc
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, **self.encryption_args(key))

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            r = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            # S3 answers 403, not 404, for a missing key unless the caller may list the whole bucket, and
            # the stack's roles may list only their own prefixes (infra/template.yaml). A listing of
            # exactly this key (allowed under those prefixes) tells a missing object from a denied one.
            if code in ("403", "AccessDenied", "Forbidden") and not self._listed(key):
                return None
            raise
        return ObjectInfo(_clean(key), int(r["ContentLength"]), r["ETag"].strip('"'))

    def _listed(self, key: str) -> bool:
        full = self._k(key)
        page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=full, MaxKeys=1)
        return any(o["Key"] == full for o in page.get("Contents", []))

    def list(self, prefix: str) -> list[ObjectInfo]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._k(prefix)):
            for o in page.get("Contents", []):
                out.append(ObjectInfo(self._rel(o["Key"]), int(o["Size"]), o["ETag"].strip('"')))
        return sorted(out, key=lambda o: o.key)

    def copy(self, src_key: str, dst_key: str) -> None:
        self.client.copy_object(
            Bucket=self.bucket,
            Key=self._k(dst_key),
            CopySource={"Bucket": self.bucket, "Key": self._k(src_key)},
            **self.encryption_args(dst_key),
        )

    def delete(self, key: str) -> None:
        for o in self.list(key):
            self.client.delete_object(Bucket=self.bucket, Key=self._k(o.key))

    def download(self, key: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._k(key), str(local_path))

    def upload(self, local_path: Path, key: str) -> None:
        self.client.upload_file(str(local_path), self.bucket, self._k(key), ExtraArgs=self.encryption_args(key) or None)


def open_store(
    uri: str, endpoint_url: str | None = None, region: str = "us-east-1", kms_key_id: str | None = None
) -> Store:
    """The store for a URI: ``s3://bucket[/prefix]`` or a local folder (plain path or file://)."""
    if uri.startswith("s3://"):
        return S3Store(uri, endpoint_url=endpoint_url, region=region, kms_key_id=kms_key_id)
    if uri.startswith("file://"):
        uri = urlparse(uri).path
    return LocalStore(uri)


def store_from_settings(settings=None) -> Store:  # settings: Settings
    from fraud_detection.settings import get_settings

    s = settings or get_settings()
    return open_store(s.store_uri, endpoint_url=s.aws_endpoint_url, region=s.aws_region, kms_key_id=s.data_kms_key_arn)
