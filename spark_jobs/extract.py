"""Extract: find the input CSVs, check their headers, read them as all-string Spark DataFrames."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from fraud_detection import contract


@dataclass(frozen=True)
class InputFile:
    uri: str  # local absolute path or s3://bucket/key
    name: str

    @property
    def spark_uri(self) -> str:
        return spark_path(self.uri)


# Hadoop's glob characters: spark.read globs any path holding one of them (``[`` alone is an invalid pattern,
# ``*`` or ``?`` may match other files); a backslash makes each one literal again.
_GLOB_CHARS = re.compile(r"([\\*?\[\]{}])")


def spark_path(uri: str) -> str:
    """The path Spark reads as exactly this file.

    Hadoop takes a path string unencoded: ``Path.as_uri()``'s percent-encoding (``%20``, ``%C3%A9``) is not
    undone, so a file named with a space or a non-ASCII character was "not found". Glob characters are
    escaped; the string is otherwise the name as written, locally and for ``s3://``.
    """
    path = uri if "://" in uri else "file://" + str(Path(uri).resolve())
    return _GLOB_CHARS.sub(r"\\\1", path)


def _s3_client():
    import boto3

    from fraud_detection.settings import get_settings

    s = get_settings()
    return boto3.client("s3", endpoint_url=s.aws_endpoint_url, region_name=s.aws_region)


def list_inputs(paths: list[str]) -> list[InputFile]:
    """Files or folders (local or s3://) -> the CSV files in them, sorted, each once."""
    found: dict[str, InputFile] = {}
    for p in paths:
        if p.startswith("s3://"):
            u = urlparse(p)
            paginator = _s3_client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=u.netloc, Prefix=u.path.lstrip("/")):
                for o in page.get("Contents", []):
                    if o["Key"].lower().endswith(".csv"):
                        uri = f"s3://{u.netloc}/{o['Key']}"
                        found[uri] = InputFile(uri, o["Key"].rsplit("/", 1)[-1])
            continue
        path = Path(p).expanduser().resolve()
        if path.is_dir():
            for f in sorted(path.rglob("*.csv")):
                # a folder named *.csv is no input (its files are); a link or FIFO is, and fails its read
                if not f.name.startswith(".") and (f.is_symlink() or not f.is_dir()):
                    found[str(f)] = InputFile(str(f), f.relative_to(path).as_posix())  # unique in the folder
        elif path.is_file():
            found[str(path)] = InputFile(str(path), path.name)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return sorted(found.values(), key=lambda f: f.uri)


def read_head(f: InputFile, nbytes: int = 65536) -> bytes:
    if f.uri.startswith("s3://"):
        u = urlparse(f.uri)
        r = _s3_client().get_object(Bucket=u.netloc, Key=u.path.lstrip("/"), Range=f"bytes=0-{nbytes - 1}")
        return r["Body"].read()
    # never blocks on a FIFO, never follows a link out of the folder: either is "not a regular file"
    fd = os.open(f.uri, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise contract.ContractError("not a regular file (a link, FIFO or folder)")
        return fh.read(nbytes)


def read_header(f: InputFile) -> list[str]:
    """The CSV header row; raises ContractError for an empty or non-CSV file."""
    head = read_head(f)
    if not head.strip():
        raise contract.ContractError("file is empty")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise contract.ContractError(f"not UTF-8 text: {exc}") from exc
    first = text.splitlines()[0] if text.splitlines() else ""
    header = next(csv.reader(io.StringIO(first)), [])
    if len(head.strip().splitlines()) < 2:
        raise contract.ContractError("file has a header but no rows")
    return header


def read_csv(spark, f: InputFile, header: list[str]):  # -> DataFrame of strings, contract columns only
    from pyspark.sql import functions as F

    df = (
        spark.read.option("header", "true")
        .option("mode", "PERMISSIVE")
        .option("multiLine", "false")
        .option("escape", '"')
        .schema(contract.spark_read_schema(header))
        .csv(f.spark_uri)
    )
    return df.select(*contract.COLUMN_NAMES, F.lit(f.name).alias("source_file"))
