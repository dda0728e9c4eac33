"""Where everything lives in the store (one S3 bucket on AWS, one folder locally) and the names of the
catalog's tables: defined once here, imported by every component. Folder names have no trailing slash;
``prefix`` adds it for listings and key tests. ``infra/template.yaml`` names the same prefixes (S3
notification filter, lifecycle rules, IAM resources, the KMS-encrypted folders): ``tests/infra/
test_store_layout.py`` checks that each prefix it names is one of these.

The DynamoDB tables' names are settings (``Settings.*_table``), as they differ per deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fraud_detection.storage import Store

# --- input: dropped files, what intake took, what it refused -------------------------------------------
LANDING = "landing"  # files dropped here trigger intake (S3 notification / ``fraud watch``)
RAW = "raw"  # accepted input, kept as dropped (KMS data key on AWS)
QUARANTINE = "quarantine"  # refused input and ``<name>.reason.json`` (KMS data key on AWS)

# --- tables written by the training job (Parquet under these folders, registered in the catalog) ------
CURATED = "curated"
TRANSACTIONS_TABLE = "transactions"
TRANSACTIONS_PATH = f"{CURATED}/{TRANSACTIONS_TABLE}"
FEATURES = "features"
FEATURES_TABLE = "features"
FEATURES_PATH = f"{FEATURES}/{FEATURES_TABLE}"
HISTORY_SNAPSHOT = f"{FEATURES}/card_history_snapshot"  # each card's recent history, for the API's store

# --- models, runs, reports ----------------------------------------------------------------------------
MODELS = "models"  # models/<version>/{model.joblib, manifest.json, manifest.sig, metrics.json, report.html}
LATEST_POINTER = f"{MODELS}/latest.json"  # what the API serves: written last, atomically
RUNS = "runs"  # runs/<run_id>.json
RUN_REQUESTS = f"{RUNS}/requests"  # the launcher's requested runs
GLUE_TEMP = f"{RUNS}/glue-temp"  # the Glue jobs' --TempDir
REPORTS = "reports"
VALIDATION_REPORTS = f"{REPORTS}/validation"  # great-expectations Data Docs per run
DRIFT_REPORTS = f"{REPORTS}/drift"
LIVE_REFERENCE = f"{DRIFT_REPORTS}/live-reference"  # cached reference profiles of the champion
METRICS = f"{REPORTS}/metrics"  # model quality and live drift for alarms / scrapers

# --- deployed code (infra/deploy.py uploads it; the Glue jobs and the Lambda load it) ------------------
CODE = "code"
GLUE_CODE = f"{CODE}/glue"
LAMBDA_CODE = f"{CODE}/lambda"

# --- embedded default only ----------------------------------------------------------------------------
STATE = "state"  # SQLite stand-ins for DynamoDB, the Spark metastore, MLflow
SECRETS = "secrets"  # a local store's generated keys (on AWS: Secrets Manager)

SENSITIVE = (RAW, QUARANTINE)  # hold card numbers as sent: encrypted with the data key, never logged


def local_state_dir(store: Store) -> Path:
    """Where the embedded default's SQLite state lives: ``<store>/state`` for a local store, else
    ``./var/state`` (a process on AWS that still keeps local state: the launcher's lock)."""
    from fraud_detection.storage import LocalStore

    return store.path(STATE) if isinstance(store, LocalStore) else Path("var", STATE).resolve()


def prefix(folder: str) -> str:
    """``folder`` as a key prefix: ``raw`` -> ``raw/``."""
    return f"{folder}/"
