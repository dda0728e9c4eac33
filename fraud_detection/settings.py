"""One typed settings object, read from the environment (prefix ``FRAUD_``).

Nothing else in the project reads ``os.environ`` for configuration.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore")

    # --- storage -----------------------------------------------------------------------------
    store_uri: str = Field("./var", description="Root of the bucket: a local folder or s3://bucket[/prefix].")
    aws_endpoint_url: str | None = Field(None, description="Override for AWS endpoints (local emulator).")
    aws_region: str = "us-east-1"
    data_kms_key_arn: str | None = Field(
        None,
        description="KMS key for raw/ and quarantine/ (full card numbers) on S3: writes there use SSE-KMS with it.",
    )

    # --- key-value state: idempotency, prediction log, card history --------------------------
    kv_backend: Literal["sqlite", "dynamodb"] = Field(
        "sqlite", description="sqlite: files under <store>/state (embedded); dynamodb: the tables below."
    )
    idempotency_table: str = "fraud-idempotency"  # pk "id" (S), TTL "expires_at"
    prediction_log_table: str = "fraud-prediction-log"  # pk "prediction_id" (S), TTL "expires_at"
    card_history_table: str = "fraud-card-history"  # pk "card_key" (S), sk "ts_id" (S), TTL "expires_at"
    card_history_ttl_days: int = Field(
        35,
        ge=31,
        description="Days a card's transaction stays in the online history after its time (at least the "
        "30-day feature window, or the API computes history features from less than training did).",
    )
    prediction_log_ttl_days: int = Field(
        400, ge=1, description="Days a prediction stays in the prediction log (DynamoDB TTL; SQLite pruning)."
    )
    prediction_log_max_rows: int = Field(
        500_000,
        ge=1000,
        description="Embedded default: the SQLite prediction log keeps at most this many rows, the newest "
        "(2.5x what live drift reads; bytes per row: docs/monitoring.md).",
    )

    # --- retraining --------------------------------------------------------------------------
    launcher: Literal["local", "glue"] = Field("local", description="local: subprocess job; glue: start_job_run")
    glue_job_name: str = "fraud-train"

    # --- retraining --- extension (idempotency, launcher, watcher) --------------------------------
    idempotency_ttl_days: int = Field(30, ge=1, description="How long a processed S3 object version is remembered.")
    idempotency_lease_s: int = Field(
        300, ge=10, description="An in-progress claim older than this is taken over (longer than the Lambda timeout)."
    )
    train_timeout_s: int = Field(4 * 3600, ge=60, description="Local launcher: a training subprocess is killed after.")
    local_train_command: str = Field(
        "", description="Local launcher: command replacing `python glue/train_job.py` (space-separated; same options)."
    )
    watch_interval_s: float = Field(2.0, gt=0, description="Watcher: seconds between scans of landing/.")
    watch_settle_s: float = Field(
        2.0, ge=0, description="Watcher: a file is taken once unchanged this long (a copy may still be writing it)."
    )

    # --- secrets -----------------------------------------------------------------------------
    model_signing_key: SecretStr | None = Field(
        None,
        description="HMAC key that signs every model manifest (training) and is checked before a model file is "
        "deserialised (API, drift). Unset on a local store: a random key is created once under <store>/secrets/. "
        "Required on s3:// stores (from Secrets Manager / SSM).",
    )
    card_hash_key: SecretStr | None = Field(
        None,
        description="Key of the keyed card-number hash. Unset on a local store: a random key is created "
        "once under <store>/secrets/. Required on s3:// stores (from Secrets Manager / SSM).",
    )

    # --- Spark / catalog ---------------------------------------------------------------------
    spark_master: str = "local[*]"
    spark_driver_memory: str = "6g"
    spark_shuffle_partitions: int = 8
    spark_log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = Field(
        "ERROR",
        description="Local Spark's own log level (log4j2): ERROR keeps Spark's and Hive's WARN noise "
        "(metastore lookups of missing databases, plan truncation) out of a user's terminal.",
    )
    catalog_database: str = "fraud"
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: readable lines when stdout is a terminal, JSON lines otherwise."
    )
    catalog_mode: Literal["local", "glue"] = Field(
        "local", description="local: Spark catalog with a Derby metastore in the store; glue: Glue Data Catalog."
    )

    # --- training ----------------------------------------------------------------------------
    model: Literal["hgb", "rf", "cluster"] = "hgb"
    test_months: int = Field(2, ge=1, description="Newest months held out as the test period.")
    validation_months: int = Field(1, ge=1, description="Months before the test period used to pick the threshold.")
    max_training_rows: int = Field(
        200_000, ge=1_000, description="Bound on rows collected to the driver: all frauds plus a weighted sample."
    )
    random_seed: int = 42
    min_roc_auc: float = Field(0.89, description="Floor: below it the model is not published as latest.")
    min_pr_auc: float = Field(0.5, description="Floor: below it the model is not published as latest.")
    promotion_tolerance: float = Field(0.002, description="Challenger may be this much worse in PR-AUC and still win.")

    # --- scoring API ---------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Interface the scoring API binds (0.0.0.0 in the container).")
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes.")
    api_keys: SecretStr | None = Field(
        None,
        description="Comma-separated API key entries '<key_id>:<salt_hex>:<sha256(salt+key) hex>' "
        "(make one with `fraud serve --new-api-key`). Unset: every scoring call gets 401.",
    )
    api_rate_limit_per_s: float = Field(
        1000.0, gt=0, description="Sustained transactions per second per API key (a batch costs one per transaction)."
    )
    api_rate_limit_burst: int = Field(
        2000, ge=1, description="Transactions a key may send at once before 429 (a batch may run it into debt)."
    )
    api_bad_key_per_s: float = Field(
        1.0, gt=0, description="Calls with a missing or wrong API key answered 401 per second per client address."
    )
    api_bad_key_burst: int = Field(
        20, ge=1, description="Wrong-key calls a client address may make at once; past it 429, connection closed."
    )
    api_max_batch: int = Field(1000, ge=1, description="Most transactions in one /v1/score/batch call.")
    api_max_body_bytes: int = Field(2_000_000, ge=1024, description="Larger request bodies get 413.")
    api_header_timeout_s: float = Field(
        10.0, gt=0, description="A request's headers must arrive within this (else the connection is closed)."
    )
    api_body_timeout_s: float = Field(
        15.0, gt=0, description="A request's body must arrive within this once its headers are in (else 408)."
    )
    api_max_header_bytes: int = Field(
        16_384, ge=1024, description="Request line plus headers larger than this get 431 and the connection closes."
    )
    api_keep_alive_s: float = Field(5.0, gt=0, description="An idle keep-alive connection is closed after this.")
    api_max_connections: int = Field(
        4096, ge=16, description="Open connections per worker; past it requests get 503 (uvicorn limit_concurrency)."
    )
    api_forwarded_allow_ips: str | None = Field(
        None,
        description="Proxies whose X-Forwarded-For names the client (uvicorn forwarded_allow_ips): the load "
        "balancer's addresses, so wrong-key limits apply per real client. Unset: 127.0.0.1 only.",
    )
    api_reload_interval_s: float = Field(
        5.0, gt=0, description="How often models/latest.json is polled and the served model's files re-hashed."
    )
    api_reload_retry_max_s: float = Field(
        60.0, gt=0, description="A refused model is tried again after the poll interval, doubling up to this."
    )
    api_state_dir: str | None = Field(
        None, description="SQLite state (card history, prediction log); default <store>/state or ./var/state."
    )
    api_dynamodb_concurrency: int = Field(
        16, ge=1, le=64, description="DynamoDB card-history calls in flight for one batch (reads and writes)."
    )
    api_card_history_max_rows: int = Field(2000, ge=1, description="Most recent rows per card read for features.")
    api_graceful_timeout_s: int = Field(20, ge=1, description="SIGTERM: wait this long for requests in flight.")
    api_access_log: bool = Field(False, description="One log line per request (errors are always logged).")
    api_metrics_public: bool = Field(False, description="Serve /metrics without an API key (scrapers inside the VPC).")
    api_opentelemetry: bool = Field(
        False,
        description="FastAPI's own OpenTelemetry spans, metrics and logs (when a provider is configured). Off: "
        "FastAPI then skips looking for providers on every request; the service's metrics are Prometheus.",
    )

    # --- tracking, drift, monitoring ---
    tracking_enabled: bool = Field(True, description="Log every training run to MLflow (never needed to serve).")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (http(s)://server, a SageMaker managed MLflow ARN, databricks...). "
        "Unset: sqlite:///<store>/state/mlflow.db on a local store; tracking is skipped on s3:// stores.",
    )
    tracking_experiment: str = Field("fraud-detection", description="MLflow experiment of the training runs.")
    registered_model_name: str = Field(
        "fraud-detection",
        description="MLflow registered model name; also the ModelName dimension of the CloudWatch metrics.",
    )
    tracking_timeout_s: int = Field(10, ge=1, description="HTTP timeout per MLflow request (remote servers).")
    tracking_max_retries: int = Field(1, ge=0, description="MLflow HTTP retries before tracking is skipped.")
    drift_alpha: float = Field(
        0.01, gt=0, lt=1, description="Family-wise significance of the drift tests (Bonferroni: alpha / features)."
    )
    drift_min_psi: float = Field(
        0.0, ge=0, description="A significant feature also needs PSI >= this to count as drifted (0: tests decide)."
    )
    drift_psi_bins: int = Field(10, ge=2, le=50, description="Quantile bins of the reference for PSI and plots.")
    drift_max_distinct: int = Field(
        5000, ge=10, description="Ordinal features with more distinct values use a bounded sample for Mann-Whitney U."
    )
    drift_sample_rows: int = Field(20_000, ge=100, description="Rows per side of that bounded sample.")
    live_drift_hours: float = Field(168.0, gt=0, description="Live drift: prediction-log window (hours back).")
    live_drift_max_rows: int = Field(200_000, ge=100, description="Live drift: most prediction-log rows read.")
    metrics_backend: Literal["auto", "file", "cloudwatch"] = Field(
        "auto", description="Model-quality metrics: auto = CloudWatch on s3:// stores, else a Prometheus text file."
    )
    alert_min_roc_auc: float = Field(0.89, description="The alert fires when the champion's test ROC-AUC is below.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
