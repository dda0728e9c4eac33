"""The bucket's folders are named once (``fraud_detection/layout.py``); the template, which cannot import
Python, must name the same ones: every data-bucket key or prefix in ``infra/template.yaml`` lies under a
folder of the layout, and the places that must name a particular folder name that one."""

from __future__ import annotations

import re
from pathlib import Path

from fraud_detection import layout

TEMPLATE = (Path(__file__).resolve().parents[2] / "infra" / "template.yaml").read_text()
BUCKET = r"(?:fraud-\$\{EnvName\}-\$\{AWS::AccountId\}-\$\{AWS::Region\}|\$\{DataBucket\})"

FOLDERS = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)}


def _keys_in_template() -> list[str]:
    """Every data-bucket key or key prefix the template names: in ARNs and s3:// URIs of the bucket,
    in lifecycle and notification prefixes, in s3:prefix conditions and in S3Key."""
    keys = re.findall(rf"(?::::|s3://){BUCKET}/([^\"\s]+)", TEMPLATE)
    keys += re.findall(r"^\s+(?:Prefix|S3Key): ([a-z][\w./*-]*)\s*$", TEMPLATE, flags=re.M)
    keys += re.findall(r"Name: prefix\s+Value: (\S+)", TEMPLATE)
    for listed in re.findall(r"s3:prefix: \[([^\]]+)\]", TEMPLATE):
        keys += [k.strip() for k in listed.split(",")]
    return keys


def _folder_of(key: str) -> str | None:
    path = key.rstrip("*").rstrip("/")
    return next((f for f in sorted(FOLDERS, key=len, reverse=True) if path == f or path.startswith(f + "/")), None)


def test_every_bucket_key_in_the_template_is_under_a_layout_folder():
    keys = _keys_in_template()
    assert len(keys) > 30, keys  # the pattern still finds them
    unknown = sorted({k for k in keys if k != "*" and _folder_of(k) is None})  # "*": the whole bucket
    assert not unknown, f"not under a folder of fraud_detection/layout.py: {unknown}"


def test_the_template_names_the_layouts_folders_where_it_matters():
    notification = re.search(r"Name: prefix\s+Value: (\S+)", TEMPLATE)
    assert notification and notification.group(1) == layout.prefix(layout.LANDING)  # intake's trigger
    lifecycle = re.findall(r"Prefix: (\S+)\s+ExpirationInDays", TEMPLATE)
    assert sorted(lifecycle) == sorted(layout.prefix(f) for f in layout.SENSITIVE)  # card numbers expire
    encrypted = re.findall(r"s3:::\$\{DataBucket\}/(\w+)/\*", TEMPLATE)
    assert set(layout.SENSITIVE) <= set(encrypted)  # the data key is required there
    assert f"/{layout.GLUE_TEMP}/" in TEMPLATE and f"/{layout.TRANSACTIONS_PATH}/" in TEMPLATE
