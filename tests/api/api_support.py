"""Helpers of the scoring API suites (a uniquely named module: ``conftest`` is taken by tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fraud_detection.settings import Settings
from fraud_detection.storage import LocalStore

ROOT = Path(__file__).resolve().parents[2]
HASH_KEY = "test-card-hash-key"
NUMERIC = {"amt": float, "lat": float, "long": float, "merch_lat": float, "merch_long": float}
INTS = {"city_pop": int, "zip": int, "unix_time": int, "is_fraud": int}


def to_request(row: dict[str, str]) -> dict:
    """A generated CSV row as a JSON request body (numbers as numbers)."""
    out: dict = {}
    for k, v in row.items():
        if k in NUMERIC:
            out[k] = float(v)
        elif k in INTS:
            out[k] = int(v)
        else:
            out[k] = v
    return out


def distinct(txn: dict, n: int) -> list[dict]:
    """``n`` copies of a request body, each with its own trans_num (a batch refuses repeats)."""
    return [{**txn, "trans_num": f"{i:032x}"} for i in range(n)]


def make_settings(store: LocalStore, api_key_entry: str, **overrides) -> Settings:
    values = dict(
        store_uri=str(store.root),
        api_keys=api_key_entry,
        card_hash_key=HASH_KEY,
        api_reload_interval_s=0.05,
        api_rate_limit_per_s=10_000,
        api_rate_limit_burst=10_000,
    )
    values.update(overrides)
    return Settings(**values)


def server_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "FRAUD_STORE_URI": settings.store_uri,
            "FRAUD_API_KEYS": settings.api_keys.get_secret_value(),
            "FRAUD_CARD_HASH_KEY": HASH_KEY,
            "FRAUD_API_HOST": "127.0.0.1",
            "FRAUD_API_PORT": str(port),
            "FRAUD_API_RELOAD_INTERVAL_S": str(settings.api_reload_interval_s),
            "FRAUD_API_RATE_LIMIT_PER_S": "100000",
            "FRAUD_API_RATE_LIMIT_BURST": "100000",
        }
    )
    env.update(extra)
    return env


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            if httpx.get(f"{base}/ready", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base} not ready after {timeout}s")


@contextmanager
def running_server(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """``python -m <args>`` serving on ``env``'s port, ready; on exit stopped as ECS stops it (SIGTERM, then
    SIGKILL after 30 s) unless it already exited. Its output goes to ``log_path``."""
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(f"http://127.0.0.1:{env['FRAUD_API_PORT']}", proc)
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
